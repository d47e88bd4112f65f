//! `dropcache check-config`: the example file validates; a bad file fails naming the key.

use std::process::Command;

fn check(path: &std::path::Path, env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dropcache"))
        .args(["check-config", "--config"])
        .arg(path)
        .env_remove("DROPCACHE_ACCOUNT_ALICE_ACCESS_TOKEN")
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn example_config_validates_with_the_token_from_the_environment() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dropcache.example.toml");
    let (ok, out, err) = check(
        &example,
        &[("DROPCACHE_ACCOUNT_ALICE_ACCESS_TOKEN", "sl.from-env")],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("ok (1 account(s), listen 127.0.0.1:8080)"),
        "{out}"
    );
    assert!(!out.contains("sl.from-env") && !err.contains("sl.from-env"));
    // Without the token the account is incomplete, and the key is named.
    let (ok, _, err) = check(&example, &[]);
    assert!(!ok);
    assert!(err.contains("account[0].access_token"), "{err}");
}

#[test]
fn bad_files_fail_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[cache]\nmetadata_ttl = \"forever\"\n",
            "cache.metadata_ttl",
        ),
        ("[cache]\nttl = \"1s\"\n", "unknown field `ttl`"),
        ("[server\n", "TOML parse error"),
    ];
    for (text, want) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let (ok, _, err) = check(&path, &[]);
        assert!(!ok, "{text}");
        assert!(err.contains(want), "{text:?}: {err}");
    }
    let (ok, _, err) = check(&dir.path().join("missing.toml"), &[]);
    assert!(!ok && err.contains("cannot read"), "{err}");
}
