//! The emulator's file API semantics over real sockets: listings and deltas, longpoll, metadata,
//! downloads and ranges, writes, temporary links, thumbnails, unicode names end to end.

mod common;

use common::{Harness, TOKEN, within};
use dropcache::upstream::content_hash::content_hash;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn names(entries: &Value) -> Vec<String> {
    entries
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e[".tag"].as_str().unwrap(),
                e["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn deltas_after_upload_move_and_delete() {
    let h = Harness::start().await;
    h.put("/Site/index.html", "<h1>hi</h1>").await;
    h.put("/Site/img/a.jpg", "jpeg").await;
    let first = h
        .call(
            "files/list_folder",
            json!({"path": "/site", "recursive": true}),
        )
        .await
        .ok();
    assert_eq!(
        names(&first["entries"]),
        ["folder:Site", "folder:img", "file:a.jpg", "file:index.html"]
    );
    assert_eq!(first["has_more"], false);
    let cursor = first["cursor"].as_str().unwrap().to_owned();

    // Nothing changed: empty delta, a cursor to keep using.
    let none = h
        .call("files/list_folder/continue", json!({"cursor": cursor}))
        .await
        .ok();
    assert_eq!(none["entries"], json!([]));
    assert_eq!(none["has_more"], false);

    // Upload, move, delete, and a change outside the scope.
    h.put("/Site/new.txt", "n").await;
    h.call(
        "files/move_v2",
        json!({"from_path": "/Site/img/a.jpg", "to_path": "/Site/b.jpg"}),
    )
    .await
    .ok();
    h.call("files/delete_v2", json!({"path": "/site/index.html"}))
        .await
        .ok();
    h.put("/Elsewhere.txt", "x").await;
    let delta = h
        .call("files/list_folder/continue", json!({"cursor": cursor}))
        .await
        .ok();
    assert_eq!(
        names(&delta["entries"]),
        [
            "file:new.txt",
            "deleted:a.jpg",
            "file:b.jpg",
            "deleted:index.html"
        ]
    );
    let deleted = &delta["entries"][1];
    assert_eq!(deleted["path_lower"], "/site/img/a.jpg");
    assert!(deleted.get("id").is_none() && deleted.get("rev").is_none());
    // The moved file keeps its id.
    assert_eq!(delta["entries"][2]["id"], first["entries"][2]["id"]);

    // The new cursor has seen it all.
    let next = delta["cursor"].as_str().unwrap();
    let again = h
        .call("files/list_folder/continue", json!({"cursor": next}))
        .await
        .ok();
    assert_eq!(again["entries"], json!([]));

    // A folder delete reports the folder and what was under it.
    h.call("files/delete_v2", json!({"path": "/Site/img"}))
        .await
        .ok();
    let gone = h
        .call("files/list_folder/continue", json!({"cursor": next}))
        .await
        .ok();
    assert_eq!(names(&gone["entries"]), ["deleted:img"]);
}

#[tokio::test]
async fn paging_with_limit_and_include_deleted() {
    let h = Harness::start().await;
    for i in 0..7 {
        h.put(&format!("/p/f{i}.txt"), format!("{i}")).await;
    }
    h.call("files/delete_v2", json!({"path": "/p/f6.txt"}))
        .await
        .ok();
    let mut page = h
        .call("files/list_folder", json!({"path": "/p", "limit": 3}))
        .await
        .ok();
    let mut seen = names(&page["entries"]);
    assert_eq!(seen.len(), 3);
    while page["has_more"] == true {
        page = h
            .call(
                "files/list_folder/continue",
                json!({"cursor": page["cursor"]}),
            )
            .await
            .ok();
        assert!(page["entries"].as_array().unwrap().len() <= 3);
        seen.extend(names(&page["entries"]));
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert!(!seen.iter().any(|n| n.starts_with("deleted")));

    let with_deleted = h
        .call(
            "files/list_folder",
            json!({"path": "/p", "include_deleted": true}),
        )
        .await
        .ok();
    assert!(names(&with_deleted["entries"]).contains(&"deleted:f6.txt".to_owned()));

    // Limit is bounded.
    let bad = h
        .call("files/list_folder", json!({"path": "/p", "limit": 0}))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn latest_cursor_and_reset() {
    let h = Harness::start().await;
    h.put("/a.txt", "a").await;
    let latest = h
        .call("files/list_folder/get_latest_cursor", json!({"path": ""}))
        .await
        .ok();
    let cursor = latest["cursor"].as_str().unwrap().to_owned();
    assert!(latest.get("entries").is_none());
    h.put("/b.txt", "b").await;
    let delta = h
        .call("files/list_folder/continue", json!({"cursor": cursor}))
        .await
        .ok();
    assert_eq!(names(&delta["entries"]), ["file:b.txt"]);

    // A forced reset invalidates every cursor; so does garbage.
    h.emu().reset_cursors();
    for c in [cursor.as_str(), "not-a-cursor"] {
        let err = h
            .call("files/list_folder/continue", json!({"cursor": c}))
            .await
            .route_error();
        assert_eq!(err, json!({".tag": "reset"}));
    }
}

#[tokio::test]
async fn longpoll_wakes_within_100ms_of_a_change() {
    let h = std::sync::Arc::new(Harness::start().await);
    let cursor = h
        .call("files/list_folder/get_latest_cursor", json!({"path": ""}))
        .await
        .ok()["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let poller = {
        let h = h.clone();
        tokio::spawn(async move {
            let a = h
                .rpc(
                    "files/list_folder/longpoll",
                    None,
                    &json!({"cursor": cursor, "timeout": 30}),
                )
                .await;
            (a, Instant::now())
        })
    };
    // Wait until the longpoll has reached the emulator.
    within("longpoll arrives", async {
        while h.emu().calls("files/list_folder/longpoll") == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    tokio::task::yield_now().await;
    assert!(!poller.is_finished(), "longpoll returned before any change");
    let changed_at = Instant::now();
    h.put("/wake.txt", "x").await;
    let (answer, returned_at) = within("longpoll answer", poller).await.unwrap();
    assert_eq!(answer.ok(), json!({"changes": true}));
    let waited = returned_at.duration_since(changed_at);
    assert!(waited < Duration::from_millis(100), "woke after {waited:?}");
}

#[tokio::test]
async fn longpoll_rules() {
    let h = Harness::start().await;
    h.put("/x", "1").await;
    let cursor = h.call("files/list_folder", json!({"path": ""})).await.ok()["cursor"].clone();
    // Authorization is refused on longpoll.
    let with_auth = h
        .rpc(
            "files/list_folder/longpoll",
            Some(TOKEN),
            &json!({"cursor": cursor}),
        )
        .await;
    assert_eq!(with_auth.status, StatusCode::BAD_REQUEST);
    assert!(
        with_auth
            .text()
            .contains("includes an Authorization header"),
        "{}",
        with_auth.text()
    );
    // timeout 30..480
    for t in [29, 481] {
        let a = h
            .rpc(
                "files/list_folder/longpoll",
                None,
                &json!({"cursor": cursor, "timeout": t}),
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "timeout {t}");
    }
    // Pending changes answer at once; backoff when asked to.
    h.put("/y", "2").await;
    h.emu().set_faults(dropcache::emulator::faults::Faults {
        longpoll_backoff: Some(7),
        ..Default::default()
    });
    let a = h
        .rpc(
            "files/list_folder/longpoll",
            None,
            &json!({"cursor": cursor, "timeout": 30}),
        )
        .await;
    assert_eq!(a.ok(), json!({"changes": true, "backoff": 7}));
    let reset = h
        .rpc(
            "files/list_folder/longpoll",
            None,
            &json!({"cursor": "junk"}),
        )
        .await;
    assert_eq!(reset.route_error(), json!({".tag": "reset"}));
}

#[tokio::test]
async fn metadata_of_files_folders_deleted_and_root() {
    let h = Harness::start().await;
    let up = h.put("/Docs/Report.PDF", "pdf").await;
    let m = h
        .call("files/get_metadata", json!({"path": "/docs/report.pdf"}))
        .await
        .ok();
    assert_eq!(m[".tag"], "file");
    assert_eq!(m["path_display"], "/Docs/Report.PDF");
    assert_eq!(m["path_lower"], "/docs/report.pdf");
    assert_eq!(m["content_hash"], content_hash(b"pdf"));
    assert_eq!(m["rev"], up["rev"]);
    let ts = m["server_modified"].as_str().unwrap();
    assert!(
        ts.len() == 20 && ts.ends_with('Z') && !ts.contains('.'),
        "{ts}"
    );
    assert!(m["id"].as_str().unwrap().starts_with("id:"));
    // By id, too.
    let by_id = h
        .call("files/get_metadata", json!({"path": m["id"]}))
        .await
        .ok();
    assert_eq!(by_id["path_lower"], "/docs/report.pdf");
    let f = h
        .call("files/get_metadata", json!({"path": "/DOCS"}))
        .await
        .ok();
    assert_eq!(
        (f[".tag"].as_str(), f["name"].as_str()),
        (Some("folder"), Some("Docs"))
    );

    h.call("files/delete_v2", json!({"path": "/Docs/Report.PDF"}))
        .await
        .ok();
    let nf = h
        .call("files/get_metadata", json!({"path": "/docs/report.pdf"}))
        .await
        .route_error();
    assert_eq!(nf, json!({".tag": "path", "path": {".tag": "not_found"}}));
    let d = h
        .call(
            "files/get_metadata",
            json!({"path": "/docs/report.pdf", "include_deleted": true}),
        )
        .await
        .ok();
    assert_eq!(d[".tag"], "deleted");

    for root in ["", "/"] {
        let a = h.call("files/get_metadata", json!({"path": root})).await;
        assert_eq!(
            a.status,
            StatusCode::BAD_REQUEST,
            "root {root:?}: {}",
            a.text()
        );
        assert!(
            a.text()
                .starts_with("Error in call to API function \"files/get_metadata\": ")
        );
    }
}

#[tokio::test]
async fn download_get_and_post_with_ranges() {
    let h = Harness::start().await;
    let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let meta = h.put("/bin.dat", data.clone()).await;

    let whole = h
        .download("files/download", json!({"path": "/bin.dat"}), &[])
        .await;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(&whole.body[..], &data[..]);
    assert_eq!(
        whole.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    let result = whole.result();
    assert!(
        result.get(".tag").is_none(),
        "download result has no .tag: {result}"
    );
    assert_eq!(result["rev"], meta["rev"]);
    assert_eq!(result["size"], 1000);

    // GET with the arg as a URL parameter and the token as `authorization`.
    let arg: String = form_urlencoded::byte_serialize(br#"{"path": "/bin.dat"}"#).collect();
    let auth: String =
        form_urlencoded::byte_serialize(format!("Bearer {TOKEN}").as_bytes()).collect();
    let get = h
        .send(h.request(
            Method::GET,
            &format!("/2/files/download?arg={arg}&authorization={auth}"),
            &[],
            "",
        ))
        .await;
    assert_eq!(get.status, StatusCode::OK);
    assert_eq!(get.body.len(), 1000);

    let cases: &[(&str, StatusCode, Option<&str>, std::ops::Range<usize>)] = &[
        (
            "bytes=0-9",
            StatusCode::PARTIAL_CONTENT,
            Some("bytes 0-9/1000"),
            0..10,
        ),
        (
            "bytes=990-",
            StatusCode::PARTIAL_CONTENT,
            Some("bytes 990-999/1000"),
            990..1000,
        ),
        (
            "bytes=-5",
            StatusCode::PARTIAL_CONTENT,
            Some("bytes 995-999/1000"),
            995..1000,
        ),
        (
            "bytes=900-5000",
            StatusCode::PARTIAL_CONTENT,
            Some("bytes 900-999/1000"),
            900..1000,
        ),
        ("bytes=0-1,5-6", StatusCode::OK, None, 0..1000),
        (
            "bytes=1000-",
            StatusCode::RANGE_NOT_SATISFIABLE,
            Some("bytes */1000"),
            0..0,
        ),
    ];
    for (range, status, content_range, slice) in cases {
        let a = h
            .download(
                "files/download",
                json!({"path": "/bin.dat"}),
                &[("Range", range)],
            )
            .await;
        assert_eq!(a.status, *status, "{range}");
        assert_eq!(a.header("content-range"), *content_range, "{range}");
        assert_eq!(&a.body[..], &data[slice.clone()], "{range}");
        if a.status == StatusCode::PARTIAL_CONTENT {
            assert_eq!(a.result()["size"], 1000, "full size in the result of a 206");
            assert_eq!(
                a.header("content-length"),
                Some(slice.len().to_string().as_str())
            );
        }
    }

    // ETag / If-None-Match → 304.
    let etag = whole.header("etag").unwrap().to_owned();
    let nm = h
        .download(
            "files/download",
            json!({"path": "/bin.dat"}),
            &[("If-None-Match", &etag)],
        )
        .await;
    assert_eq!(nm.status, StatusCode::NOT_MODIFIED);
    assert!(nm.body.is_empty());

    // Folders are not files; a stale rev is not found.
    h.call("files/create_folder_v2", json!({"path": "/dir"}))
        .await
        .ok();
    let nf = h
        .download("files/download", json!({"path": "/dir"}), &[])
        .await
        .route_error();
    assert_eq!(nf, json!({".tag": "path", "path": {".tag": "not_file"}}));
    let stale = h
        .download("files/download", json!({"path": "rev:000000000abc"}), &[])
        .await;
    assert_eq!(stale.route_error()["path"][".tag"], "not_found");
    let by_rev = h
        .download(
            "files/download",
            json!({"path": format!("rev:{}", meta["rev"].as_str().unwrap())}),
            &[],
        )
        .await;
    assert_eq!(by_rev.body.len(), 1000);
}

#[tokio::test]
async fn unicode_names_end_to_end() {
    let h = Harness::start().await;
    let path = "/Fotos/Café 😀/naïve.txt";
    let up = h.put(path, "unicode").await;
    assert_eq!(up["path_display"], path);
    assert_eq!(up["name"], "naïve.txt");
    // The JSON body escapes non-ASCII as \uXXXX, like Dropbox.
    let raw = h.call("files/get_metadata", json!({"path": path})).await;
    assert!(raw.body.is_ascii(), "{}", raw.text());
    assert!(raw.text().contains(r"\ud83d\ude00"), "{}", raw.text());
    assert_eq!(raw.ok()["path_lower"], "/fotos/café 😀/naïve.txt");
    // Download: the argument goes escaped; the result comes back escaped.
    let dl = h
        .download(
            "files/download",
            json!({"path": "/FOTOS/CAFÉ 😀/NAÏVE.TXT"}),
            &[],
        )
        .await;
    assert_eq!(dl.status, StatusCode::OK);
    assert!(
        dl.header("dropbox-api-result")
            .unwrap()
            .contains(r"na\u00efve.txt")
    );
    assert_eq!(dl.result()["path_display"], path);
    assert_eq!(&dl.body[..], b"unicode");
    // Raw UTF-8 in Dropbox-API-Arg is refused.
    let auth = format!("Bearer {TOKEN}");
    let raw_arg = format!(r#"{{"path": "{path}"}}"#);
    let bad = h
        .send(h.request(
            Method::POST,
            "/2/files/download",
            &[("Authorization", &auth), ("Dropbox-API-Arg", &raw_arg)],
            "",
        ))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.text().contains("could not decode input as JSON"),
        "{}",
        bad.text()
    );
    let listed = h
        .call(
            "files/list_folder",
            json!({"path": "/fotos", "recursive": true}),
        )
        .await
        .ok();
    assert_eq!(
        names(&listed["entries"]),
        ["folder:Fotos", "folder:Café 😀", "file:naïve.txt"]
    );
}

#[tokio::test]
async fn upload_modes_conflicts_and_content_hash() {
    let h = Harness::start().await;
    let a = h.upload_with(json!({"path": "/f.txt"}), "one").await.ok();
    assert!(
        a.get(".tag").is_none(),
        "upload result is a plain FileMetadata"
    );
    assert!(a["rev"].as_str().unwrap().len() >= 9);
    // add + different content → conflict; autorename → "f (1).txt".
    let c = h
        .upload_with(json!({"path": "/f.txt", "mode": "add"}), "two")
        .await
        .route_error();
    assert_eq!(c[".tag"], "path");
    assert_eq!(
        c["reason"],
        json!({".tag": "conflict", "conflict": {".tag": "file"}})
    );
    let r = h
        .upload_with(
            json!({"path": "/f.txt", "mode": {".tag": "add"}, "autorename": true}),
            "two",
        )
        .await
        .ok();
    assert_eq!(r["name"], "f (1).txt");
    // Identical content: same rev.
    let same = h
        .upload_with(json!({"path": "/f.txt", "mode": "overwrite"}), "one")
        .await
        .ok();
    assert_eq!(same["rev"], a["rev"]);
    // update with a stale rev conflicts; with the current rev it writes.
    let fresh = h
        .upload_with(
            json!({"path": "/f.txt", "mode": {".tag": "update", "update": a["rev"]}}),
            "three",
        )
        .await
        .ok();
    assert_ne!(fresh["rev"], a["rev"]);
    let stale = h
        .upload_with(
            json!({"path": "/f.txt", "mode": {".tag": "update", "update": a["rev"]}}),
            "four",
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    // content_hash is checked.
    let ok = h
        .upload_with(
            json!({"path": "/h.txt", "content_hash": content_hash(b"abc")}),
            "abc",
        )
        .await
        .ok();
    assert_eq!(ok["content_hash"], content_hash(b"abc"));
    let bad = h
        .upload_with(
            json!({"path": "/h2.txt", "content_hash": content_hash(b"abc")}),
            "abd",
        )
        .await
        .route_error();
    assert_eq!(bad, json!({".tag": "content_hash_mismatch"}));
    // client_modified is kept to the second; fractional seconds are refused.
    let cm = h
        .upload_with(
            json!({"path": "/t.txt", "client_modified": "2015-05-12T15:50:38Z"}),
            "t",
        )
        .await
        .ok();
    assert_eq!(cm["client_modified"], "2015-05-12T15:50:38Z");
    // Wrong content type for an upload.
    let auth = format!("Bearer {TOKEN}");
    let wrong = h
        .send(h.request(
            Method::POST,
            "/2/files/upload",
            &[
                ("Authorization", &auth),
                ("Dropbox-API-Arg", r#"{"path": "/x"}"#),
                ("Content-Type", "application/json"),
            ],
            "x",
        ))
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(
        wrong.text().contains("Bad HTTP \"Content-Type\" header"),
        "{}",
        wrong.text()
    );
}

#[tokio::test]
async fn folders_moves_and_deletes() {
    let h = Harness::start().await;
    let f = h
        .call("files/create_folder_v2", json!({"path": "/New Folder"}))
        .await
        .ok();
    assert!(
        f["metadata"].get(".tag").is_none(),
        "CreateFolderResult.metadata is plain"
    );
    assert_eq!(f["metadata"]["name"], "New Folder");
    let dup = h
        .call("files/create_folder_v2", json!({"path": "/new folder"}))
        .await
        .route_error();
    assert_eq!(
        dup,
        json!({".tag": "path", "path": {".tag": "conflict", "conflict": {".tag": "folder"}}})
    );
    h.put("/New Folder/x.txt", "x").await;
    let m = h
        .call(
            "files/move_v2",
            json!({"from_path": "/new folder", "to_path": "/Moved"}),
        )
        .await
        .ok();
    assert_eq!(m["metadata"][".tag"], "folder");
    assert_eq!(
        h.download("files/download", json!({"path": "/Moved/x.txt"}), &[])
            .await
            .body
            .as_ref(),
        b"x"
    );
    let into = h
        .call(
            "files/move_v2",
            json!({"from_path": "/Moved", "to_path": "/Moved/in"}),
        )
        .await
        .route_error();
    assert_eq!(into[".tag"], "cant_move_folder_into_itself");
    let missing = h
        .call(
            "files/move_v2",
            json!({"from_path": "/nope", "to_path": "/x"}),
        )
        .await
        .route_error();
    assert_eq!(
        missing,
        json!({".tag": "from_lookup", "from_lookup": {".tag": "not_found"}})
    );
    let del = h
        .call("files/delete_v2", json!({"path": "/Moved"}))
        .await
        .ok();
    assert_eq!(del["metadata"][".tag"], "folder");
    let again = h
        .call("files/delete_v2", json!({"path": "/Moved"}))
        .await
        .route_error();
    assert_eq!(
        again,
        json!({".tag": "path_lookup", "path_lookup": {".tag": "not_found"}})
    );
    let malformed = h
        .call("files/create_folder_v2", json!({"path": "/bad/"}))
        .await
        .route_error();
    assert_eq!(malformed["path"][".tag"], "malformed_path");
}

#[tokio::test]
async fn temporary_links_serve_the_file() {
    let h = Harness::start().await;
    h.put("/pics/photo.png", "not really a png").await;
    let t = h
        .call(
            "files/get_temporary_link",
            json!({"path": "/pics/photo.png"}),
        )
        .await
        .ok();
    assert!(t["metadata"].get(".tag").is_none());
    let link = t["link"].as_str().unwrap();
    let path = link
        .strip_prefix(&h.running.base_url)
        .expect("link on the emulator");
    let got = h.send(h.request(Method::GET, path, &[], "")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("content-type"), Some("image/png"));
    assert_eq!(&got.body[..], b"not really a png");
    let part = h
        .send(h.request(Method::GET, path, &[("Range", "bytes=4-9")], ""))
        .await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&part.body[..], b"really");
    let none = h
        .send(h.request(Method::GET, "/temporary_link/nope", &[], ""))
        .await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn thumbnails_are_real_images() {
    let h = Harness::start().await;
    let img = image::RgbImage::from_pixel(300, 150, image::Rgb([0, 128, 255]));
    let mut png = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    h.put("/g/wide.png", png.into_inner()).await;
    h.put("/g/notes.txt", "text").await;
    h.put("/g/broken.jpg", "not a jpeg").await;
    for (format, mime, want) in [
        ("jpeg", "image/jpeg", image::ImageFormat::Jpeg),
        ("png", "image/png", image::ImageFormat::Png),
        ("webp", "image/webp", image::ImageFormat::WebP),
    ] {
        let arg = json!({"resource": {".tag": "path", "path": "/g/wide.png"},
                         "format": {".tag": format}, "size": {".tag": "w64h64"}, "mode": "strict"});
        let t = h.download("files/get_thumbnail_v2", arg, &[]).await;
        assert_eq!(t.status, StatusCode::OK, "{}", t.text());
        assert_eq!(t.header("content-type"), Some(mime));
        assert_eq!(image::guess_format(&t.body).unwrap(), want);
        let decoded = image::load_from_memory(&t.body).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (64, 32));
        assert_eq!(t.result()["file_metadata"]["name"], "wide.png");
    }
    let arg = |p: &str| json!({"resource": {".tag": "path", "path": p}});
    let txt = h
        .download("files/get_thumbnail_v2", arg("/g/notes.txt"), &[])
        .await
        .route_error();
    assert_eq!(txt, json!({".tag": "unsupported_extension"}));
    let broken = h
        .download("files/get_thumbnail_v2", arg("/g/broken.jpg"), &[])
        .await
        .route_error();
    assert_eq!(broken, json!({".tag": "unsupported_image"}));
    let missing = h
        .download("files/get_thumbnail_v2", arg("/g/none.jpg"), &[])
        .await
        .route_error();
    assert_eq!(missing["path"][".tag"], "not_found");
    let bad_size = h
        .download(
            "files/get_thumbnail_v2",
            json!({"resource": {".tag": "path", "path": "/g/wide.png"}, "size": "w1h1"}),
            &[],
        )
        .await;
    assert_eq!(bad_size.status, StatusCode::BAD_REQUEST);
}
