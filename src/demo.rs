//! `dropcache demo`: a small bundled site (an `index.html`, a stylesheet, a few generated
//! images, a nested folder, a `404.html`, `_redirects`, `_headers`, and a private file outside
//! the published root) in a Dropbox emulator, and the proxy in front of it with the embedded
//! store: the folder published as account `demo` (`/demo/…`) and as the site `www` (`/www/…`).
//! Nothing to configure; edits made to the sample on disk are live (the emulator watches it).

use crate::config::{Config, ConfigError};
use crate::emulator::{AccountSpec, Emulator, EmulatorConfig, EmulatorError, RunningEmulator};
use image::{ImageFormat, Rgb, RgbImage};
use std::io::Cursor;
use std::path::Path;

/// The demo account's alias and token, and the prefix its site answers under.
pub const ALIAS: &str = "demo";
pub const SITE: &str = "www";
const TOKEN: &str = "demo-token";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot write the sample under {path}: {source}")]
    Sample {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode a sample image: {0}")]
    Image(#[from] image::ImageError),
    #[error(transparent)]
    Emulator(#[from] EmulatorError),
    #[error("cannot start the emulator: {0}")]
    Listen(#[source] std::io::Error),
    #[error("the demo's own config is invalid: {0}")]
    Config(#[from] ConfigError),
}

const INDEX: &str = r#"<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>dropcache demo</title>
<link rel="stylesheet" href="style.css">
</head>
<body>
<h1>A site served from a Dropbox folder</h1>
<p>Every file here lives in <code>/site</code> of a (local, emulated) Dropbox. dropcache serves
it with ETags, Last-Modified, ranges and 304s, asking Dropbox only when it must.</p>
<figure><img src="photos/sunset.jpg" alt="sunset" width="320"><figcaption>photos/sunset.jpg</figcaption></figure>
<figure><img src="photos/tiles.png" alt="tiles" width="320"><figcaption>photos/tiles.png</figcaption></figure>
<figure><img src="photos/2026/venice.jpg" alt="venice" width="320"><figcaption>photos/2026/venice.jpg</figcaption></figure>
<p>As a site (<code>/www/</code>): <a href="about">a clean URL</a> (about.html),
<a href="old-about">a redirect</a> and <a href="pictures/sunset.jpg">a rewrite of a folder</a>
from <code>_redirects</code>, <a href="no-such-page">the custom 404 page</a>, and headers from
<code>_headers</code>. Edit any file in the sample folder: the next request serves it.</p>
<p><a href="gallery">The photos as a gallery</a>: the folder's album view (<code>/demo/photos/?album</code>:
sizes, dates taken, placeholders, thumbnails), rendered by a small page with no build step.
Add a photo to the folder: it is in the gallery on reload.</p>
<p><a href="/demo/photos/">Browse the photos folder</a> (the account's listing)</p>
</body>
</html>
"#;

const ABOUT: &str = r#"<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>About this demo</title><link rel="stylesheet" href="style.css"></head>
<body>
<h1>About</h1>
<p>This page is <code>about.html</code> in the Dropbox folder, served as <code>/www/about</code>.
<code>/www/about.html</code> redirects here: one canonical URL per page.</p>
<p><a href="./">Back home</a></p>
</body>
</html>
"#;

const NOT_FOUND: &str = r#"<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>Not found</title><link rel="stylesheet" href="/www/style.css"></head>
<body>
<h1>Nothing here</h1>
<p>This is the site's own <code>404.html</code>, served with status 404.</p>
<p><a href="/www/">Back home</a></p>
</body>
</html>
"#;

const REDIRECTS: &str = "\
# Netlify's grammar: from, to, status (301 unless said); first match wins.
/home          /                301
/old-about     /about           301
/pictures/*    /photos/:splat   200
";

const HEADERS: &str = "\
# A path pattern, then its headers, indented.
/*
  X-Frame-Options: DENY
  Referrer-Policy: same-origin
/photos/*
  Cache-Control: public, max-age=3600
";

const STYLE: &str = "body { font-family: sans-serif; max-width: 46rem; margin: 2rem auto; }\n\
figure { display: inline-block; margin: 0.5rem; }\nimg { border-radius: 6px; }\n";

fn gradient(w: u32, h: u32, from: [u8; 3], to: [u8; 3]) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let t = (x + y) as f32 / (w + h) as f32;
        let mix = |a: u8, b: u8| (a as f32 + (b as f32 - a as f32) * t) as u8;
        Rgb([
            mix(from[0], to[0]),
            mix(from[1], to[1]),
            mix(from[2], to[2]),
        ])
    })
}

fn tiles(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        if (x / 40 + y / 40) % 2 == 0 {
            Rgb([30, 110, 200])
        } else {
            Rgb([240, 240, 230])
        }
    })
}

fn encode(img: &RgbImage, format: ImageFormat) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format)?;
    Ok(out.into_inner())
}

/// The gallery page (`/www/gallery`): the photos folder rendered from its album view.
const GALLERY: &str = include_str!("demo_assets/gallery.html");

/// Photos in the demo's album.
pub const ALBUM_PHOTOS: usize = 30;

/// The album's photos: varied sizes and shapes, most with EXIF (a date taken, some turned by
/// their orientation, a camera), a few PNGs without.
fn album_photos() -> Result<Vec<(String, Vec<u8>)>, DemoError> {
    use crate::body::facts::{ExifSpec, with_exif};
    let shapes = [
        (360, 240),
        (240, 360),
        (400, 200),
        (300, 300),
        (320, 180),
        (200, 300),
    ];
    let palette = [
        ([250, 140, 40], [90, 30, 120]),
        ([20, 90, 160], [220, 200, 150]),
        ([30, 140, 80], [240, 230, 120]),
        ([180, 40, 60], [250, 200, 200]),
        ([60, 60, 70], [160, 190, 220]),
    ];
    let mut out = Vec::new();
    for i in 0..ALBUM_PHOTOS {
        let (w, h) = shapes[i % shapes.len()];
        let (from, to) = palette[i % palette.len()];
        let img = gradient(w, h, from, to);
        if i % 7 == 6 {
            out.push((
                format!("site/photos/scan-{i:02}.png"),
                encode(&img, ImageFormat::Png)?,
            ));
            continue;
        }
        let jpeg = encode(&img, ImageFormat::Jpeg)?;
        // A small thumbnail in the EXIF, as cameras embed.
        let thumb = encode(
            &image::imageops::thumbnail(&img, (w / 8).max(1), (h / 8).max(1)),
            ImageFormat::Jpeg,
        )?;
        let day = 1 + (i * 7) % 28;
        let taken = format!(
            "2026:{:02}:{day:02} {:02}:{:02}:00",
            1 + i % 12,
            8 + i % 10,
            (i * 13) % 60
        );
        let orientation = match i % 5 {
            1 => 6,
            3 => 8,
            4 => 3,
            _ => 1,
        };
        let spec = ExifSpec {
            orientation: Some(orientation),
            taken: Some(&taken),
            offset: (i % 2 == 0).then_some("+01:00"),
            make: Some("Demo"),
            model: Some(if i % 3 == 0 { "Pocket 2" } else { "Field 7" }),
            big_endian: i % 2 == 1,
            thumbnail: Some(&thumb),
        };
        let file = with_exif(&jpeg, &spec).map_err(|e| DemoError::Sample {
            path: format!("photos/photo-{i:02}.jpg"),
            source: std::io::Error::other(e.to_string()),
        })?;
        out.push((format!("site/photos/photo-{i:02}.jpg"), file));
    }
    Ok(out)
}

/// Writes the sample Dropbox under `dir` (replacing earlier copies of the same files).
pub fn write_sample(dir: &Path) -> Result<(), DemoError> {
    let mut files: Vec<(String, Vec<u8>)> = album_photos()?;
    files.push(("site/gallery.html".into(), GALLERY.as_bytes().to_vec()));
    let fixed: Vec<(&str, Vec<u8>)> = vec![
        ("site/index.html", INDEX.as_bytes().to_vec()),
        ("site/style.css", STYLE.as_bytes().to_vec()),
        ("site/about.html", ABOUT.as_bytes().to_vec()),
        ("site/404.html", NOT_FOUND.as_bytes().to_vec()),
        ("site/_redirects", REDIRECTS.as_bytes().to_vec()),
        ("site/_headers", HEADERS.as_bytes().to_vec()),
        (
            "site/photos/sunset.jpg",
            encode(
                &gradient(640, 400, [250, 140, 40], [90, 30, 120]),
                ImageFormat::Jpeg,
            )?,
        ),
        (
            "site/photos/tiles.png",
            encode(&tiles(400, 400), ImageFormat::Png)?,
        ),
        (
            "site/photos/2026/venice.jpg",
            encode(
                &gradient(640, 480, [20, 90, 160], [220, 200, 150]),
                ImageFormat::Jpeg,
            )?,
        ),
        (
            "private/notes.txt",
            b"Outside the published root: the proxy never asks for this.\n".to_vec(),
        ),
    ];
    files.extend(fixed.into_iter().map(|(rel, b)| (rel.to_owned(), b)));
    for (rel, bytes) in files {
        let path = dir.join(rel);
        let write = || {
            std::fs::create_dir_all(path.parent().expect("sample paths have a parent"))?;
            std::fs::write(&path, &bytes)
        };
        write().map_err(|source| DemoError::Sample {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(())
}

/// Writes the sample under `dir/dropbox`, starts an emulator over it on a free port, and
/// returns it with the proxy's config: account `demo` publishing `/site`, the same folder as
/// the site `www` under `/www/`, the change feed on (edits are live), the embedded store in
/// `dir/store`, listening on `listen`.
pub async fn start(dir: &Path, listen: &str) -> Result<(RunningEmulator, Config), DemoError> {
    let dropbox = dir.join("dropbox");
    write_sample(&dropbox)?;
    let emulator = Emulator::new(EmulatorConfig {
        accounts: vec![AccountSpec {
            name: "Demo User".into(),
            token: Some(TOKEN.into()),
            root: Some(dropbox),
        }],
        ..EmulatorConfig::default()
    })?
    .spawn("127.0.0.1:0", None)
    .await
    .map_err(DemoError::Listen)?;
    let base = &emulator.base_url;
    let text = format!(
        "[server]\nlisten = {listen:?}\n\
         [dropbox]\napi_url = {base:?}\ncontent_url = {base:?}\nnotify_url = {base:?}\noauth_url = {base:?}\nauthorize_url = \"{base}/oauth2/authorize\"\n\
         [store]\npath = {store:?}\n[cache]\ndir = {cache:?}\n\
         [[account]]\nalias = {ALIAS:?}\nroot = \"/site\"\naccess_token = {TOKEN:?}\n\
         [[site]]\nname = {SITE:?}\naccount = {ALIAS:?}\npath = \"/{SITE}\"\n",
        store = dir.join("store").display().to_string(),
        cache = dir.join("cache").display().to_string(),
    );
    let config = Config::parse(&text, &|_| None)?;
    Ok((emulator, config))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sample_has_real_images() {
        let dir = tempfile::tempdir().unwrap();
        super::write_sample(dir.path()).unwrap();
        let jpg = std::fs::read(dir.path().join("site/photos/sunset.jpg")).unwrap();
        assert_eq!(&jpg[..3], &[0xFF, 0xD8, 0xFF]);
        let png = std::fs::read(dir.path().join("site/photos/tiles.png")).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(dir.path().join("private/notes.txt").is_file());
    }
}
