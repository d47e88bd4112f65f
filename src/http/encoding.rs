//! Content codings (RFC 9110 §12.5.3 `Accept-Encoding`, §8.4 `Content-Encoding`): which
//! compressed representation a request takes, and which types are worth compressing.
//!
//! The choice: the offered coding with the highest q-value (`*` stands for any not named;
//! `q=0` refuses one); on a tie, br before gzip. None means identity (also when no header:
//! a client that says nothing gets the bytes as they are).

/// A coding the proxy makes or serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Br,
    Gzip,
}

impl Encoding {
    /// Preference order on a tie.
    pub const ALL: [Encoding; 2] = [Encoding::Br, Encoding::Gzip];

    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Br => "br",
            Encoding::Gzip => "gzip",
        }
    }

    /// The file name suffix of a precompressed sibling (`app.js.br`).
    pub fn suffix(self) -> &'static str {
        match self {
            Encoding::Br => ".br",
            Encoding::Gzip => ".gz",
        }
    }
}

/// The q-value each coding (and `*`, and `identity`) has in `accept`, in thousandths.
fn weights(accept: &str) -> Vec<(String, u16)> {
    accept
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let name = parts.next()?.trim().to_ascii_lowercase();
            if name.is_empty() {
                return None;
            }
            let mut q = 1000;
            for p in parts {
                let (k, v) = p.split_once('=')?;
                if k.trim().eq_ignore_ascii_case("q") {
                    q = parse_q(v.trim())?;
                }
            }
            Some((name, q))
        })
        .collect()
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac: u16 = format!("{frac:0<3}").parse().ok()?;
    match int {
        "0" => Some(frac),
        "1" if frac == 0 => Some(1000),
        _ => None,
    }
}

/// The coding `accept` (an `Accept-Encoding` value) takes among `offered`; None: identity.
pub fn choose(accept: Option<&str>, offered: &[Encoding]) -> Option<Encoding> {
    let w = weights(accept?);
    let q_of = |token: &str| {
        w.iter()
            .find(|(n, _)| n == token || (token == "gzip" && n == "x-gzip"))
            .or_else(|| w.iter().find(|(n, _)| n == "*"))
            .map_or(0, |(_, q)| *q)
    };
    let mut best: Option<(Encoding, u16)> = None;
    for e in Encoding::ALL.into_iter().filter(|e| offered.contains(e)) {
        let q = q_of(e.token());
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((e, q));
        }
    }
    best.map(|(e, _)| e)
}

/// Whether a body of `content_type` is worth compressing: text, and the structured formats
/// that are text (JSON, XML, SVG, JavaScript) or compress like it (wasm). Images, video,
/// archives and fonts in compressed formats are not.
pub fn compressible(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    kind == "text"
        || sub.ends_with("+json")
        || sub.ends_with("+xml")
        || matches!(
            sub,
            "javascript"
                | "x-javascript"
                | "ecmascript"
                | "json"
                | "xml"
                | "wasm"
                | "manifest+json"
                | "x-ndjson"
                | "vnd.ms-fontobject"
                | "x-font-ttf"
                | "x-font-opentype"
        )
        || essence == "image/svg+xml"
        || essence == "image/x-icon"
        || essence == "image/bmp"
        || essence == "font/ttf"
        || essence == "font/otf"
}

#[cfg(test)]
mod tests {
    use super::*;
    use Encoding::*;

    #[test]
    fn the_coding_follows_q_values_then_br_before_gzip() {
        let both = [Br, Gzip];
        let cases: &[(Option<&str>, &[Encoding], Option<Encoding>)] = &[
            (None, &both, None),
            (Some(""), &both, None),
            (Some("gzip, deflate, br"), &both, Some(Br)),
            (Some("gzip"), &both, Some(Gzip)),
            (Some("GZIP"), &both, Some(Gzip)),
            (Some("x-gzip"), &both, Some(Gzip)),
            (Some("br;q=0.5, gzip;q=0.8"), &both, Some(Gzip)),
            (Some("br;q=1.0, gzip;q=1"), &both, Some(Br)),
            (Some("gzip;q=0, br;q=0"), &both, None),
            (Some("identity"), &both, None),
            (Some("*"), &both, Some(Br)),
            (Some("*;q=0.1, br;q=0"), &both, Some(Gzip)),
            (Some("*;q=0"), &both, None),
            (Some("br"), &[Gzip], None),
            (Some("br, gzip"), &[Gzip], Some(Gzip)),
            // A malformed q-value drops its item.
            (Some("br;q=2, gzip"), &both, Some(Gzip)),
            (Some("br;q=0.0001, gzip;q=0.001"), &both, Some(Gzip)),
            (Some("deflate, zstd"), &both, None),
        ];
        for (accept, offered, want) in cases {
            assert_eq!(choose(*accept, offered), *want, "{accept:?} of {offered:?}");
        }
    }

    #[test]
    fn text_is_compressible_and_compressed_formats_are_not() {
        for yes in [
            "text/html; charset=utf-8",
            "text/css",
            "application/javascript",
            "text/javascript",
            "application/json",
            "application/ld+json",
            "image/svg+xml",
            "application/xml",
            "application/atom+xml",
            "application/wasm",
        ] {
            assert!(compressible(yes), "{yes}");
        }
        for no in [
            "image/jpeg",
            "image/png",
            "image/webp",
            "video/mp4",
            "application/zip",
            "application/gzip",
            "font/woff2",
            "application/octet-stream",
            "",
        ] {
            assert!(!compressible(no), "{no}");
        }
    }
}
