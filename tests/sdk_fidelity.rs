//! Proof of fidelity by a real client: the official Dropbox Python SDK drives every emulator
//! route over TLS (tests/sdk/drive_emulator.py) with zero decoding errors.
//!
//! The SDK is installed by `tests/run` into `target/sdk-venv`; `DROPCACHE_SDK_PYTHON` names
//! another interpreter that has `dropbox==12.2.4`.

mod common;

use common::{APP_KEY, APP_SECRET, TOKEN, config, test_certs, within};
use dropcache::emulator::Emulator;
use std::path::PathBuf;

fn python() -> PathBuf {
    let python = std::env::var_os("DROPCACHE_SDK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/sdk-venv/bin/python")
        });
    let ok = std::process::Command::new(&python)
        .args(["-c", "import dropbox"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import the Dropbox SDK: run `bash tests/run` (it installs tests/sdk/requirements.txt \
         into target/sdk-venv) or set DROPCACHE_SDK_PYTHON",
        python.display()
    );
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_drives_every_route_over_tls() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let certs = test_certs(dir.path());
    let tls = dropcache::server::tls::acceptor(&certs.cert, &certs.key).expect("test certs load");
    // The default account is a directory on disk, seeded with a file for the SDK to read.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("Seed")).unwrap();
    std::fs::write(root.path().join("Seed/Read Me.txt"), "seeded on disk").unwrap();
    let mut config = config();
    config.accounts[0].root = Some(root.path().to_owned());
    let emu = Emulator::new(config).unwrap();
    let running = emu.spawn("127.0.0.1:0", Some(tls)).await.unwrap();
    let host = format!("localhost:{}", running.addr.port());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/drive_emulator.py");
    let out = within(
        "the SDK script",
        tokio::process::Command::new(python)
            .arg(&script)
            .env("DROPBOX_API_HOST", &host)
            .env("DROPBOX_API_CONTENT_HOST", &host)
            .env("DROPBOX_API_NOTIFY_HOST", &host)
            .env("DROPBOX_WEB_HOST", &host)
            // requests lets these override any other CA setting; machines may export them.
            .env("REQUESTS_CA_BUNDLE", &certs.ca)
            .env_remove("CURL_CA_BUNDLE")
            .env("EMU_TOKEN", TOKEN)
            .env("EMU_APP_KEY", APP_KEY)
            .env("EMU_APP_SECRET", APP_SECRET)
            .env("EMU_BASE", format!("https://{host}"))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        out.status.success(),
        "the SDK script failed:\n{stdout}\n{stderr}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.ends_with(" passed, 0 failed"), "closing line: {last}");

    // The request log proves the SDK reached every route.
    let log = running.emulator.log();
    for route in [
        "files/list_folder",
        "files/list_folder/continue",
        "files/list_folder/get_latest_cursor",
        "files/list_folder/longpoll",
        "files/get_metadata",
        "files/download",
        "files/get_thumbnail_v2",
        "files/get_temporary_link",
        "files/upload",
        "files/delete_v2",
        "files/move_v2",
        "files/create_folder_v2",
        "sharing/create_shared_link_with_settings",
        "sharing/get_shared_link_metadata",
        "sharing/get_shared_link_file",
        "sharing/list_shared_links",
        "users/get_current_account",
        "auth/token/revoke",
        "check/user",
        "check/app",
        "oauth2/token",
        "temporary_link",
    ] {
        assert!(log.count(route) > 0, "the SDK never called {route}");
    }
    // The SDK's writes landed in the directory.
    assert_eq!(
        std::fs::read(root.path().join("SDK/hello.txt")).unwrap(),
        b"hello world"
    );
    assert!(
        !root.path().join("SDK/Moved.txt").exists(),
        "deleted through the SDK"
    );
    // App-auth calls are logged as the app.
    assert!(log.count_for("sharing/get_shared_link_file", "app") > 0);
}
