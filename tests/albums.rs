//! The album view of a folder (`?album`), over real sockets: image facts read from each file's
//! first bytes once per content hash (a copy costs nothing; a second answer asks Dropbox
//! nothing), sizes after EXIF orientation, dates taken, cameras, placeholders, srcsets, videos,
//! sub-albums, sorting, and the album's own ETag.

mod common;

use common::Harness;
use common::proxy::{Settings, TestProxy};
use dropcache::body::facts::{ExifSpec, with_exif};
use hyper::StatusCode;
use serde_json::Value;
use std::io::Cursor;

fn jpeg(w: u32, h: u32, shade: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([shade, (x % 200) as u8, (y % 200) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([10, 200, 30]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn setup() -> (Harness, TestProxy) {
    let h = Harness::start().await;
    let turned = with_exif(
        &jpeg(80, 60, 10),
        &ExifSpec {
            orientation: Some(6),
            taken: Some("2024:05:03 09:00:00"),
            ..Default::default()
        },
    )
    .unwrap();
    let camera = with_exif(
        &jpeg(80, 60, 200),
        &ExifSpec {
            orientation: Some(1),
            taken: Some("2024:05:01 12:00:00"),
            offset: Some("+02:00"),
            make: Some("Acme"),
            model: Some("Snap 3"),
            big_endian: true,
            thumbnail: None,
        },
    )
    .unwrap();
    h.put("/Public/photos/a.jpg", turned).await;
    h.put("/Public/photos/b.jpg", camera.clone()).await;
    h.put("/Public/photos/copy.jpg", camera).await;
    h.put("/Public/photos/c.png", png(40, 30)).await;
    h.put("/Public/photos/notes.txt", "not a photo").await;
    h.put("/Public/photos/clip.mp4", vec![0u8; 2048]).await;
    h.put("/Public/photos/sub/e.jpg", jpeg(20, 20, 50)).await;
    h.put("/Public/photos/sub/d.jpg", jpeg(20, 20, 90)).await;
    let p = TestProxy::start(&h.running.base_url, &Settings::default()).await;
    (h, p)
}

fn names(album: &Value) -> Vec<&str> {
    album["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_folder_is_an_album_with_facts_read_once_per_content() {
    let (h, p) = setup().await;
    h.emu().reset_log();
    let a = p.get("/alice/photos/?album", &[]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(
        a.header("content-type"),
        Some("application/vnd.dropcache.album+json")
    );
    let album = a.json();
    // By date taken (a file without EXIF has its upload time, which is later); ties by name.
    assert_eq!(
        names(&album),
        vec!["b.jpg", "copy.jpg", "a.jpg", "c.png"],
        "{album:#}"
    );
    let img = |name: &str| {
        album["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .unwrap()
            .clone()
    };
    let a_jpg = img("a.jpg");
    assert_eq!(
        (a_jpg["width"].as_u64(), a_jpg["height"].as_u64()),
        (Some(60), Some(80)),
        "turned"
    );
    assert_eq!(a_jpg["orientation"], 6);
    assert_eq!(a_jpg["taken"], "2024-05-03T09:00:00");
    assert_eq!(a_jpg["url"], "/alice/photos/a.jpg");
    let b = img("b.jpg");
    assert_eq!(b["taken"], "2024-05-01T12:00:00+02:00");
    assert_eq!(b["camera"]["make"], "Acme");
    assert_eq!(b["camera"]["model"], "Snap 3");
    assert!(b["placeholder"]["color"].as_str().unwrap().starts_with('#'));
    assert_eq!(b["placeholder"]["blurhash"].as_str().unwrap().len(), 28);
    let srcset = b["srcset"].as_array().unwrap();
    assert_eq!(srcset.last().unwrap()["url"], "/alice/photos/b.jpg");
    assert_eq!(srcset.last().unwrap()["width"], 80);
    let c = img("c.png");
    assert_eq!(
        (c["width"].as_u64(), c["height"].as_u64()),
        (Some(40), Some(30))
    );
    assert_eq!(c.get("camera"), None);
    // Videos, and sub-folders as albums with a cover and a count.
    assert_eq!(album["videos"][0]["name"], "clip.mp4");
    assert_eq!(album["videos"][0]["type"], "video/mp4");
    assert_eq!(album["albums"][0]["name"], "sub");
    assert_eq!(album["albums"][0]["count"], 2);
    assert_eq!(album["albums"][0]["cover"], "/alice/photos/sub/d.jpg");
    // One small download per distinct image (the copy shares b.jpg's facts), one thumbnail
    // each for the placeholders.
    let log = h.emu().log();
    assert_eq!(h.emu().calls("files/download"), 3, "{log:?}");
    assert_eq!(h.emu().calls("files/get_thumbnail_v2"), 3, "{log:?}");
    // Again: nothing asked of Dropbox, the same bytes, and a 304 by the album's ETag.
    h.emu().reset_log();
    let again = p.get("/alice/photos/?album", &[]).await;
    assert_eq!(again.body, a.body);
    assert_eq!(h.emu().log().total, 0, "{:?}", h.emu().log());
    let etag = a.header("etag").unwrap().to_owned();
    let not_modified = p
        .get("/alice/photos/?album", &[("if-none-match", &etag)])
        .await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    // By `Accept` too, and other sorts.
    let by_accept = p
        .get(
            "/alice/photos/",
            &[("accept", "application/vnd.dropcache.album+json")],
        )
        .await;
    assert_eq!(by_accept.body, a.body);
    let by_name = p.get("/alice/photos/?album&sort=name", &[]).await.json();
    assert_eq!(names(&by_name), vec!["a.jpg", "b.jpg", "c.png", "copy.jpg"]);
    assert_ne!(
        p.get("/alice/photos/?album&sort=name", &[])
            .await
            .header("etag"),
        Some(etag.as_str())
    );
    let bad = p.get("/alice/photos/?album&sort=size", &[]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text().contains("taken, name, modified"));
}

/// The facts of a large photo come from its first bytes: a Range request, not the photo.
#[tokio::test]
async fn facts_are_read_from_the_first_bytes_not_the_whole_photo() {
    let h = Harness::start().await;
    // Noise does not compress: a photo of several MiB.
    let noise = image::RgbImage::from_fn(1600, 1200, |x, y| {
        let v = (x.wrapping_mul(2654435761) ^ y.wrapping_mul(40503)).wrapping_mul(2246822519);
        image::Rgb([(v >> 8) as u8, (v >> 16) as u8, (v >> 24) as u8])
    });
    let mut big = Cursor::new(Vec::new());
    noise.write_to(&mut big, image::ImageFormat::Jpeg).unwrap();
    let big = with_exif(
        &big.into_inner(),
        &ExifSpec {
            orientation: Some(8),
            taken: Some("2023:12:31 23:59:59"),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(big.len() > 1 << 20, "{} bytes", big.len());
    h.put("/Public/big/photo.jpg", big.clone()).await;
    let p = TestProxy::start(&h.running.base_url, &Settings::default()).await;
    h.emu().reset_log();
    let album = p.get("/alice/big/?album", &[]).await.json();
    assert_eq!(album["images"][0]["width"], 1200);
    assert_eq!(album["images"][0]["height"], 1600);
    assert_eq!(album["images"][0]["taken"], "2023-12-31T23:59:59");
    let log = h.emu().log();
    assert_eq!(h.emu().calls("files/download"), 1, "{log:?}");
    // The first 128 KiB and a 32-pixel thumbnail, not the photo.
    assert!(
        log.body_bytes < 160 * 1024,
        "{} of {} bytes",
        log.body_bytes,
        big.len()
    );
}

#[tokio::test]
async fn a_cached_body_costs_no_call_for_its_facts() {
    let (h, p) = setup().await;
    // b.jpg's body is cached first: its facts (and copy.jpg's) come from the blob.
    assert_eq!(
        p.get("/alice/photos/b.jpg", &[]).await.status,
        StatusCode::OK
    );
    h.emu().reset_log();
    let album = p.get("/alice/photos/?album", &[]).await.json();
    assert_eq!(album["images"].as_array().unwrap().len(), 4);
    assert_eq!(h.emu().calls("files/download"), 2, "{:?}", h.emu().log());
}

/// A changed photo's facts are read through the change feed, before the switch: the album
/// answer after the edit asks Dropbox nothing.
#[tokio::test]
async fn a_changed_photo_is_recomputed_through_the_feed() {
    let h = Harness::start().await;
    h.put(
        "/Public/photos/a.jpg",
        with_exif(
            &jpeg(80, 60, 10),
            &ExifSpec {
                orientation: Some(6),
                ..Default::default()
            },
        )
        .unwrap(),
    )
    .await;
    h.put("/Public/photos/b.jpg", jpeg(50, 50, 99)).await;
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            feed: true,
            ..Settings::default()
        },
    )
    .await;
    p.feed_live("alice").await;
    let first = p.get("/alice/photos/?album", &[]).await.json();
    assert_eq!(first["images"][0]["name"], "a.jpg");
    assert_eq!(first["images"][0]["width"], 60);
    // The photo is turned back upright in Dropbox (a new version, orientation 1).
    h.emu().reset_log();
    h.put(
        "/Public/photos/a.jpg",
        with_exif(
            &jpeg(80, 60, 10),
            &ExifSpec {
                orientation: Some(1),
                ..Default::default()
            },
        )
        .unwrap(),
    )
    .await;
    common::eventually("the album shows the new version", || async {
        let album = p.get("/alice/photos/?album", &[]).await.json();
        album["images"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "a.jpg" && i["width"] == 80)
    })
    .await;
    // Its facts were read once, ahead of the switch, by the feed: one small download and one
    // thumbnail; the album answers themselves asked nothing.
    assert_eq!(h.emu().calls("files/download"), 1, "{:?}", h.emu().log());
    assert_eq!(
        h.emu().calls("files/get_thumbnail_v2"),
        1,
        "{:?}",
        h.emu().log()
    );
}

/// One answer reads at most `albums.reads_per_answer` new facts: past it the album is
/// answered incomplete (and not to be kept), and the next answer goes on.
#[tokio::test]
async fn a_big_folder_is_read_a_bounded_part_per_answer() {
    let h = Harness::start().await;
    const READS: usize = 16;
    let n = READS + 6;
    for i in 0..n {
        h.put(&format!("/Public/many/p{i:03}.png"), png(4 + i as u32, 5))
            .await;
    }
    let settings = Settings {
        extra: format!("[albums]\nreads_per_answer = {READS}\n"),
        ..Settings::default()
    };
    let p = TestProxy::start(&h.running.base_url, &settings).await;
    h.emu().reset_log();
    let first = p.get("/alice/many/?album", &[]).await;
    let album = first.json();
    assert_eq!(album["images"].as_array().unwrap().len(), n);
    assert_eq!(album["complete"], false);
    assert_eq!(first.header("cache-control"), Some("no-store"));
    let with = |a: &Value| {
        a["images"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i.get("width").is_some())
            .count()
    };
    assert_eq!(with(&album), READS);
    assert_eq!(h.emu().calls("files/download"), READS as u64);
    let second = p.get("/alice/many/?album", &[]).await;
    let album = second.json();
    assert_eq!(album["complete"], true);
    assert_eq!(with(&album), n);
    assert_eq!(second.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(h.emu().calls("files/download"), n as u64);
}

/// A camera's photo carries its own small thumbnail in the EXIF: its placeholder is made of
/// that, and its facts cost one small call in all.
#[tokio::test]
async fn an_embedded_thumbnail_saves_the_thumbnail_call() {
    let h = Harness::start().await;
    let thumb = jpeg(16, 12, 120);
    let photo = with_exif(
        &jpeg(160, 120, 120),
        &ExifSpec {
            orientation: Some(1),
            thumbnail: Some(&thumb),
            ..Default::default()
        },
    )
    .unwrap();
    h.put("/Public/cam/photo.jpg", photo).await;
    let p = TestProxy::start(&h.running.base_url, &Settings::default()).await;
    h.emu().reset_log();
    let album = p.get("/alice/cam/?album", &[]).await.json();
    assert!(
        album["images"][0]["placeholder"]["blurhash"].is_string(),
        "{album}"
    );
    assert_eq!(h.emu().calls("files/download"), 1);
    assert_eq!(
        h.emu().calls("files/get_thumbnail_v2"),
        0,
        "{:?}",
        h.emu().log()
    );
}

/// Facts are kept in the store: another instance on the same Redis (its own body cache, its
/// own memory) answers the album asking Dropbox for no file.
#[tokio::test]
async fn another_instance_reuses_the_facts_through_the_store() {
    let redis = common::redis::RedisServer::start();
    let (h, _) = setup().await;
    let on_redis = || Settings {
        redis: Some(redis.url.clone()),
        ..Settings::default()
    };
    let p = TestProxy::start(&h.running.base_url, &on_redis()).await;
    let q = TestProxy::start(&h.running.base_url, &on_redis()).await;
    let first = p.get("/alice/photos/?album", &[]).await.json();
    h.emu().reset_log();
    let second = q.get("/alice/photos/?album", &[]).await.json();
    assert_eq!(first["images"], second["images"]);
    assert_eq!(h.emu().calls("files/download"), 0, "{:?}", h.emu().log());
    assert_eq!(h.emu().calls("files/get_thumbnail_v2"), 0);
}
