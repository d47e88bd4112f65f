//! `files/get_thumbnail_v2` (reference §3.3): real JPEG / PNG / WebP thumbnails of stored
//! images, at the requested size and mode, for a path or a shared link.

use super::body::Download;
use super::files::resolve;
use super::sharing::link_file;
use super::tree::Content;
use super::wire::ApiError;
use super::{Call, Caller, Emulator, Reply};
use crate::upstream::json::to_header_safe;
use crate::upstream::types::{THUMBNAIL_SIZES, thumbnailable};
use hyper::StatusCode;
use image::imageops::FilterType;
use image::{DynamicImage, GenericImageView, ImageFormat};
use serde_json::json;

/// Dropbox does not thumbnail images above 20 MB.
const MAX_SOURCE: u64 = 20 * 1024 * 1024;
fn size_of(tag: &str) -> Option<(u32, u32)> {
    let (w, h) = tag.strip_prefix('w')?.split_once('h')?;
    Some((w.parse().ok()?, h.parse().ok()?))
}

pub(super) async fn get_thumbnail_v2(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
    let arg = &call.arg;
    let resource = arg
        .sub("resource")
        .ok_or_else(|| ApiError::bad_field(arg.source, "resource", "missing required field"))?;
    let format = match arg.tag("format")?.unwrap_or("jpeg") {
        "jpeg" => ImageFormat::Jpeg,
        "png" => ImageFormat::Png,
        "webp" => ImageFormat::WebP,
        other => {
            return Err(ApiError::bad_field(
                arg.source,
                "format",
                format!("unknown tag '{other}'"),
            ));
        }
    };
    let size_tag = arg.tag("size")?.unwrap_or("w64h64");
    if !THUMBNAIL_SIZES.contains(&size_tag) {
        return Err(ApiError::bad_field(
            arg.source,
            "size",
            format!("unknown tag '{size_tag}'"),
        ));
    }
    let (w, h) = size_of(size_tag).expect("listed sizes parse");
    let mode = arg.tag("mode")?.unwrap_or("strict").to_owned();
    if !["strict", "bestfit", "fitone_bestfit", "original"].contains(&mode.as_str()) {
        return Err(ApiError::bad_field(
            arg.source,
            "mode",
            format!("unknown tag '{mode}'"),
        ));
    }
    let (node, content, result) = {
        let world = emu.world();
        match resource.tag(".tag")? {
            Some("path") => {
                let Caller::User { account, .. } = call.caller else {
                    return Err(ApiError::BadInput(
                        "app authentication can only read shared links (resource: link)".into(),
                    ));
                };
                let a = &world.accounts[account];
                let key = resolve(a, resource.path("path", false)?, "path")?;
                let node =
                    a.ns.get(&key)
                        .ok_or_else(|| ApiError::lookup("path", "not_found"))?;
                let meta = node
                    .file_metadata()
                    .ok_or_else(|| ApiError::lookup("path", "not_file"))?;
                let content = a.ns.content(node).expect("a file");
                (node.clone(), content, json!({ "file_metadata": meta }))
            }
            Some("link") => {
                let url = resource.str("url")?;
                let (account, node, minimal) = link_file(
                    &world,
                    url,
                    resource.opt_str("path")?,
                    resource.opt_str("password")?,
                )?;
                if node.is_folder() {
                    return Err(ApiError::route(json!({".tag": "unsupported_extension"})));
                }
                let content = world.accounts[account].ns.content(&node).expect("a file");
                (node, content, json!({ "link_metadata": minimal }))
            }
            _ => {
                return Err(ApiError::bad_field(
                    arg.source,
                    "resource",
                    "expected path or link",
                ));
            }
        }
    };
    if !thumbnailable(node.name()) {
        return Err(ApiError::route(json!({".tag": "unsupported_extension"})));
    }
    let file = node.file().expect("checked above");
    if file.size > MAX_SOURCE {
        return Err(ApiError::route(json!({".tag": "unsupported_image"})));
    }
    let bytes = match content {
        Content::Memory(b) => b.to_vec(),
        Content::Disk(p) => tokio::fs::read(p)
            .await
            .map_err(|_| ApiError::Server(StatusCode::INTERNAL_SERVER_ERROR))?,
    };
    let image = tokio::task::spawn_blocking(move || render(&bytes, format, w, h, &mode))
        .await
        .map_err(|_| ApiError::Server(StatusCode::INTERNAL_SERVER_ERROR))?
        .map_err(|e| ApiError::route(json!({".tag": e})))?;
    let etag = format!("\"{}-{size_tag}-{}\"", file.rev, format.extensions_str()[0]);
    Ok(Reply::Download(Download {
        size: image.len() as u64,
        content: Content::Memory(image.into()),
        result: Some(to_header_safe(&result)),
        etag,
        content_type: format.to_mime_type(),
    }))
}

/// The EXIF orientation of an encoded image, if it has one.
fn exif_orientation(data: &[u8]) -> Option<image::metadata::Orientation> {
    let exif = exif::Reader::new()
        .read_from_container(&mut std::io::Cursor::new(data))
        .ok()?;
    let o = exif
        .get_field(exif::Tag::Orientation, exif::In::PRIMARY)?
        .value
        .get_uint(0)?;
    image::metadata::Orientation::from_exif(u8::try_from(o).ok()?)
}

/// Decodes, turns upright (EXIF orientation), scales down per `mode` (never up), encodes. The error is a ThumbnailV2Error tag.
fn render(
    data: &[u8],
    format: ImageFormat,
    w: u32,
    h: u32,
    mode: &str,
) -> Result<Vec<u8>, &'static str> {
    let mut img = image::load_from_memory(data).map_err(|_| "unsupported_image")?;
    // As Dropbox does: the thumbnail is upright, its EXIF orientation applied.
    if let Some(o) = exif_orientation(data) {
        img.apply_orientation(o);
    }
    let (iw, ih) = img.dimensions();
    // bestfit modes may use the transposed box, whichever matches the image's orientation.
    let (bw, bh) = match mode {
        "bestfit" | "fitone_bestfit" if (iw > ih) != (w > h) => (h, w),
        _ => (w, h),
    };
    let out = match mode {
        "original" => img,
        "fitone_bestfit" => {
            let scale = (bw as f64 / iw as f64).max(bh as f64 / ih as f64).min(1.0);
            let (nw, nh) = (
                ((iw as f64 * scale).round() as u32).max(1),
                ((ih as f64 * scale).round() as u32).max(1),
            );
            img.resize_exact(nw, nh, FilterType::Triangle)
        }
        _ if iw <= bw && ih <= bh => img,
        _ => img.resize(bw, bh, FilterType::Triangle),
    };
    let out = match format {
        ImageFormat::Jpeg => DynamicImage::ImageRgb8(out.to_rgb8()),
        _ => DynamicImage::ImageRgba8(out.to_rgba8()),
    };
    let mut buf = std::io::Cursor::new(Vec::new());
    out.write_to(&mut buf, format)
        .map_err(|_| "conversion_error")?;
    Ok(buf.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img =
            DynamicImage::ImageRgb8(image::RgbImage::from_pixel(w, h, image::Rgb([200, 10, 10])));
        let mut buf = std::io::Cursor::new(Vec::new());
        img.write_to(&mut buf, ImageFormat::Png).unwrap();
        buf.into_inner()
    }

    #[test]
    fn sizes_by_mode() {
        let src = png(400, 200);
        let cases = [
            ("strict", 64, 64, (64, 32)),
            ("strict", 128, 256, (128, 64)),
            ("bestfit", 128, 256, (256, 128)),
            ("fitone_bestfit", 64, 64, (128, 64)),
            ("original", 64, 64, (400, 200)),
            ("strict", 2048, 1536, (400, 200)),
        ];
        for (mode, w, h, want) in cases {
            for format in [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP] {
                let out = render(&src, format, w, h, mode).unwrap();
                assert_eq!(image::guess_format(&out).unwrap(), format);
                let img = image::load_from_memory(&out).unwrap();
                assert_eq!(img.dimensions(), want, "{mode} {w}x{h} {format:?}");
            }
        }
        assert_eq!(
            render(b"not an image", ImageFormat::Png, 64, 64, "strict"),
            Err("unsupported_image")
        );
        assert_eq!(size_of("w480h320"), Some((480, 320)));
    }
}
