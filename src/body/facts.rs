//! Image facts for albums: what a gallery frontend needs before it shows a photo (its displayed
//! size, when it was taken, how it is turned, the camera), read from the file's first bytes
//! (`HEAD_BYTES`, a Range request, not the whole photo). Pure: bytes in, facts out.
//!
//! Dimensions come from the format's header (`imagesize`: JPEG, PNG, GIF, WebP, HEIF/AVIF,
//! BMP, TIFF…); EXIF from the container (`kamadak-exif`: JPEG APP1, PNG eXIf, WebP EXIF,
//! HEIF, TIFF). A file whose header is not within the bytes read, or that is no image, has no
//! facts (None): the album lists it without them, and nothing fails.

use serde::{Deserialize, Serialize};
use std::io::Cursor;

/// How much of a file is read for its facts: a JPEG's EXIF segment is at most 64 KiB and comes
/// before the frame header, which is then near.
pub const HEAD_BYTES: u64 = 128 * 1024;

/// Version of stored facts.
pub const FACTS_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    pub v: u32,
    /// Pixels as displayed: after the EXIF orientation (5–8 turn the picture a quarter).
    pub width: u32,
    pub height: u32,
    /// EXIF orientation, 1 (as stored) to 8; 1 when the file does not say.
    pub orientation: u8,
    /// EXIF DateTimeOriginal as `YYYY-MM-DDTHH:MM:SS`, with its `OffsetTimeOriginal`
    /// (`+02:00`) when the file has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taken: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub make: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// Whether `head` could be the start of an image this reads whose header lies further on (a
/// longer read may give its facts): it is a known image format.
pub fn may_need_more(head: &[u8]) -> bool {
    imagesize::image_type(head).is_ok()
}

/// The facts of an image whose first bytes are `head`; None when it is not an image this
/// reads, or its header is not within `head`.
pub fn read(head: &[u8]) -> Option<Facts> {
    let size = imagesize::blob_size(head).ok()?;
    let (w, h) = (
        u32::try_from(size.width).ok()?,
        u32::try_from(size.height).ok()?,
    );
    if w == 0 || h == 0 {
        return None;
    }
    let exif = exif::Reader::new()
        .read_from_container(&mut Cursor::new(head))
        .ok();
    let field = |tag| {
        exif.as_ref()
            .and_then(|e| e.get_field(tag, exif::In::PRIMARY))
    };
    let text = |tag| {
        field(tag)
            .and_then(|f| match &f.value {
                exif::Value::Ascii(parts) => parts.first().map(|p| {
                    String::from_utf8_lossy(p)
                        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
                        .to_owned()
                }),
                _ => None,
            })
            .filter(|t| !t.is_empty() && t.len() <= 128)
    };
    // HEIF and AVIF are turned by their `irot` box, which the size already has: their EXIF
    // orientation must not turn them again.
    let turned_by_container = matches!(
        imagesize::image_type(head),
        Ok(imagesize::ImageType::Heif(_))
    );
    let orientation = field(exif::Tag::Orientation)
        .and_then(|f| f.value.get_uint(0))
        .filter(|o| (1..=8).contains(o) && !turned_by_container)
        .unwrap_or(1) as u8;
    let (width, height) = if orientation >= 5 { (h, w) } else { (w, h) };
    Some(Facts {
        v: FACTS_VERSION,
        width,
        height,
        orientation,
        taken: text(exif::Tag::DateTimeOriginal)
            .and_then(|t| date_time(&t, text(exif::Tag::OffsetTimeOriginal).as_deref())),
        make: text(exif::Tag::Make),
        model: text(exif::Tag::Model),
    })
}

/// EXIF's `YYYY:MM:DD HH:MM:SS` (and an offset `±HH:MM`) as `YYYY-MM-DDTHH:MM:SS[±HH:MM]`;
/// None for what is not a date (cameras write `    :  :     :  :  ` when they do not know).
fn date_time(exif: &str, offset: Option<&str>) -> Option<String> {
    let b = exif.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let shape = b.len() >= 19
        && digits(0..4)
        && b[4] == b':'
        && digits(5..7)
        && b[7] == b':'
        && digits(8..10)
        && b[10] == b' '
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !shape || &exif[0..4] == "0000" {
        return None;
    }
    let mut out = format!(
        "{}-{}-{}T{}",
        &exif[0..4],
        &exif[5..7],
        &exif[8..10],
        &exif[11..19]
    );
    if let Some(o) = offset.filter(|o| {
        let o = o.as_bytes();
        o.len() == 6
            && (o[0] == b'+' || o[0] == b'-')
            && o[1..3].iter().all(u8::is_ascii_digit)
            && o[3] == b':'
            && o[4..6].iter().all(u8::is_ascii_digit)
    }) {
        out.push_str(o);
    }
    Some(out)
}

/// What a frontend shows while a photo loads: its dominant colour and a BlurHash, made from a
/// small thumbnail of it (Dropbox's smallest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placeholder {
    /// `#rrggbb`: the mean colour.
    pub color: String,
    /// <https://blurha.sh>, 4×3 components.
    pub blurhash: String,
}

/// The placeholder of an image from a small encoded thumbnail of it; None when the thumbnail
/// does not decode.
pub fn placeholder(thumbnail: &[u8]) -> Option<Placeholder> {
    let img = image::load_from_memory(thumbnail).ok()?.to_rgba8();
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 || w > 2048 || h > 2048 {
        return None;
    }
    let n = u64::from(w) * u64::from(h);
    let mut sum = [0u64; 3];
    for p in img.pixels() {
        for (s, c) in sum.iter_mut().zip(p.0) {
            *s += u64::from(c);
        }
    }
    let color = format!("#{:02x}{:02x}{:02x}", sum[0] / n, sum[1] / n, sum[2] / n);
    let blurhash = blurhash::encode(4, 3, w, h, img.as_raw()).ok()?;
    Some(Placeholder { color, blurhash })
}

/// The thumbnail a camera embeds in a JPEG's EXIF (IFD1), if `head` holds it whole: a
/// placeholder can be made of it with no call to Dropbox.
pub fn embedded_thumbnail(head: &[u8]) -> Option<Vec<u8>> {
    let exif = exif::Reader::new()
        .read_from_container(&mut Cursor::new(head))
        .ok()?;
    let at = |tag| {
        exif.get_field(tag, exif::In::THUMBNAIL)?
            .value
            .get_uint(0)
            .map(|v| v as usize)
    };
    let (offset, len) = (
        at(exif::Tag::JPEGInterchangeFormat)?,
        at(exif::Tag::JPEGInterchangeFormatLength)?,
    );
    if len == 0 || len > 64 * 1024 {
        return None;
    }
    exif.buf()
        .get(offset..offset.checked_add(len)?)
        .map(<[u8]>::to_vec)
}

/// What a photo's EXIF may say (for the demo's and the tests' generated photos).
#[derive(Debug, Clone, Default)]
pub struct ExifSpec<'a> {
    pub orientation: Option<u16>,
    /// `YYYY:MM:DD HH:MM:SS`.
    pub taken: Option<&'a str>,
    /// `±HH:MM`.
    pub offset: Option<&'a str>,
    pub make: Option<&'a str>,
    pub model: Option<&'a str>,
    /// Big-endian (`MM`) rather than little-endian (`II`) TIFF.
    pub big_endian: bool,
    /// A small JPEG embedded as the EXIF thumbnail (as cameras do).
    pub thumbnail: Option<&'a [u8]>,
}

/// `jpeg` (a baseline JPEG file) with an EXIF APP1 segment saying `spec`, right after SOI.
pub fn with_exif(jpeg: &[u8], spec: &ExifSpec) -> Result<Vec<u8>, exif::Error> {
    use exif::{Field, In, Tag, Value};
    let ascii = |tag, s: &str| Field {
        tag,
        ifd_num: In::PRIMARY,
        value: Value::Ascii(vec![s.as_bytes().to_vec()]),
    };
    let mut fields = Vec::new();
    if let Some(o) = spec.orientation {
        fields.push(Field {
            tag: Tag::Orientation,
            ifd_num: In::PRIMARY,
            value: Value::Short(vec![o]),
        });
    }
    for (tag, v) in [
        (Tag::Make, spec.make),
        (Tag::Model, spec.model),
        (Tag::DateTimeOriginal, spec.taken),
        (Tag::OffsetTimeOriginal, spec.offset),
    ] {
        if let Some(v) = v {
            fields.push(ascii(tag, v));
        }
    }
    let mut writer = exif::experimental::Writer::new();
    for f in &fields {
        writer.push_field(f);
    }
    if let Some(thumb) = spec.thumbnail {
        writer.set_jpeg(thumb, In::THUMBNAIL);
    }
    let mut tiff = Cursor::new(Vec::new());
    writer.write(&mut tiff, !spec.big_endian)?;
    let tiff = tiff.into_inner();
    let len = u16::try_from(2 + 6 + tiff.len()).map_err(|_| exif::Error::TooBig("EXIF data"))?;
    let mut out = Vec::with_capacity(jpeg.len() + tiff.len() + 10);
    out.extend_from_slice(&jpeg[..2]);
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(&tiff);
    out.extend_from_slice(&jpeg[2..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, RgbImage};

    fn encoded(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_jpeg_without_exif_has_its_size_and_nothing_else() {
        let f = read(&encoded(64, 48, ImageFormat::Jpeg)).unwrap();
        assert_eq!((f.width, f.height, f.orientation), (64, 48, 1));
        assert_eq!((f.taken, f.make, f.model), (None, None, None));
    }

    #[test]
    fn exif_is_read_in_both_byte_orders_and_every_orientation_turns_the_size() {
        let jpeg = encoded(64, 48, ImageFormat::Jpeg);
        for big_endian in [false, true] {
            for orientation in 1..=8u16 {
                let spec = ExifSpec {
                    orientation: Some(orientation),
                    taken: Some("2024:05:01 12:34:56"),
                    offset: Some("+02:00"),
                    make: Some("Acme"),
                    model: Some("Snap 3"),
                    big_endian,
                    thumbnail: None,
                };
                let file = with_exif(&jpeg, &spec).unwrap();
                // The TIFF header says which order it is in.
                let at = file.windows(6).position(|w| w == b"Exif\0\0").unwrap() + 6;
                assert_eq!(&file[at..at + 2], if big_endian { b"MM" } else { b"II" });
                let f = read(&file).unwrap_or_else(|| panic!("{orientation} {big_endian}"));
                assert_eq!(f.orientation as u16, orientation);
                let turned = orientation >= 5;
                assert_eq!(
                    (f.width, f.height),
                    if turned { (48, 64) } else { (64, 48) },
                    "{orientation}"
                );
                assert_eq!(f.taken.as_deref(), Some("2024-05-01T12:34:56+02:00"));
                assert_eq!(f.make.as_deref(), Some("Acme"));
                assert_eq!(f.model.as_deref(), Some("Snap 3"));
            }
        }
    }

    #[test]
    fn dates_without_offsets_or_unknown_ones() {
        let jpeg = encoded(10, 10, ImageFormat::Jpeg);
        let no_offset = with_exif(
            &jpeg,
            &ExifSpec {
                taken: Some("2020:01:02 03:04:05"),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            read(&no_offset).unwrap().taken.as_deref(),
            Some("2020-01-02T03:04:05")
        );
        let unknown = with_exif(
            &jpeg,
            &ExifSpec {
                taken: Some("    :  :     :  :  "),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(read(&unknown).unwrap().taken, None);
        assert_eq!(date_time("0000:00:00 00:00:00", None), None);
        assert_eq!(
            date_time("2020:01:02 03:04:05", Some("bad")),
            Some("2020-01-02T03:04:05".into())
        );
    }

    #[test]
    fn png_webp_and_gif_have_their_size() {
        for (format, w, h) in [
            (ImageFormat::Png, 30, 20),
            (ImageFormat::WebP, 31, 21),
            (ImageFormat::Gif, 12, 34),
        ] {
            let f = read(&encoded(w, h, format)).unwrap_or_else(|| panic!("{format:?}"));
            assert_eq!((f.width, f.height, f.orientation), (w, h, 1), "{format:?}");
        }
    }

    #[test]
    fn a_cameras_embedded_thumbnail_is_found() {
        let thumb = encoded(32, 24, ImageFormat::Jpeg);
        let spec = ExifSpec {
            orientation: Some(1),
            thumbnail: Some(&thumb),
            ..Default::default()
        };
        for big_endian in [false, true] {
            let file = with_exif(
                &encoded(64, 48, ImageFormat::Jpeg),
                &ExifSpec {
                    big_endian,
                    ..spec.clone()
                },
            )
            .unwrap();
            assert_eq!(embedded_thumbnail(&file).as_deref(), Some(&thumb[..]));
            assert!(placeholder(&embedded_thumbnail(&file).unwrap()).is_some());
        }
        assert_eq!(
            embedded_thumbnail(&encoded(64, 48, ImageFormat::Jpeg)),
            None
        );
    }

    #[test]
    fn placeholders_are_the_mean_colour_and_a_blurhash() {
        let red = RgbImage::from_pixel(32, 24, image::Rgb([200, 30, 40]));
        let mut png = Cursor::new(Vec::new());
        red.write_to(&mut png, ImageFormat::Png).unwrap();
        let p = placeholder(&png.into_inner()).unwrap();
        assert_eq!(p.color, "#c81e28");
        assert_eq!(p.blurhash.len(), 4 + 2 * 4 * 3, "{}", p.blurhash);
        assert_eq!(placeholder(b"not an image"), None);
    }

    #[test]
    fn what_is_not_an_image_or_is_cut_short_has_no_facts() {
        assert_eq!(read(b""), None);
        assert_eq!(read(b"hello, world"), None);
        // A HEIC whose boxes are cut off before its size: no facts, cleanly.
        let mut heic = Vec::new();
        heic.extend_from_slice(&24u32.to_be_bytes());
        heic.extend_from_slice(b"ftypheic\0\0\0\0mif1heic");
        heic.extend_from_slice(&[0, 0, 1, 0]);
        heic.extend_from_slice(b"meta");
        assert_eq!(read(&heic), None);
        // A JPEG cut before its frame header.
        let jpeg = with_exif(
            &encoded(64, 48, ImageFormat::Jpeg),
            &ExifSpec {
                orientation: Some(6),
                ..Default::default()
            },
        )
        .unwrap();
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        assert_eq!(read(&jpeg[..sof]), None);
        assert!(read(&jpeg[..sof + 12]).is_some());
    }
}
