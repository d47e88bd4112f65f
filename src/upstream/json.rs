//! Dropbox's "HTTP header safe" JSON: every non-ASCII character and 0x7F escaped as `\uXXXX`.
//!
//! Reference §1.4: `Dropbox-API-Arg` and `Dropbox-API-Result` must be ASCII; astral characters
//! become UTF-16 surrogate pairs. Dropbox's servers escape their JSON bodies the same way.

use serde::Serialize;
use serde_json::ser::Formatter;
use std::io;

/// Serialises `value` as compact JSON with all non-ASCII (and DEL) escaped.
pub fn to_header_safe<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, AsciiFormatter);
    value
        .serialize(&mut ser)
        .expect("serialising to a Vec cannot fail for JSON values");
    String::from_utf8(out).expect("the formatter writes ASCII only")
}

struct AsciiFormatter;

impl Formatter for AsciiFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if c.is_ascii() && c != '\x7f' {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_like_dropbox() {
        let cases = [
            // The official example from the JSON-encoding page.
            (
                json!({"field": "some_üñîcødé_and_\u{7f}"}),
                r#"{"field":"some_\u00fc\u00f1\u00eec\u00f8d\u00e9_and_\u007f"}"#,
            ),
            (
                json!({"path": "/héllo.txt"}),
                r#"{"path":"/h\u00e9llo.txt"}"#,
            ),
            // Astral plane: a surrogate pair.
            (json!("😀"), r#""\ud83d\ude00""#),
            // Control characters keep serde_json's escapes; quotes stay escaped.
            (json!("a\"b\n"), r#""a\"b\n""#),
            (json!({"n": 1, "ok": true}), r#"{"n":1,"ok":true}"#),
        ];
        for (value, want) in cases {
            let got = to_header_safe(&value);
            assert_eq!(got, want);
            assert!(got.is_ascii());
            let back: serde_json::Value = serde_json::from_str(&got).unwrap();
            assert_eq!(back, value, "round trip");
        }
    }
}
