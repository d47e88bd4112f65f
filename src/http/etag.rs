//! Entity tags (RFC 9110 §8.8.3): parsing `If-Match` / `If-None-Match` lists and the strong and
//! weak comparison functions.

/// One entity tag: `"opaque"` or `W/"opaque"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTag {
    pub weak: bool,
    /// The opaque part, without quotes.
    pub tag: String,
}

impl EntityTag {
    pub fn strong(tag: impl Into<String>) -> Self {
        EntityTag {
            weak: false,
            tag: tag.into(),
        }
    }

    /// Strong comparison: both strong and identical (§8.8.3.2).
    pub fn strong_eq(&self, other: &EntityTag) -> bool {
        self.compares(other.weak, &other.tag, true)
    }

    /// Weak comparison: identical opaque parts, weakness ignored.
    pub fn weak_eq(&self, other: &EntityTag) -> bool {
        self.compares(other.weak, &other.tag, false)
    }

    /// The comparison (strong or weak) with the tag `weak`, `tag`, given in parts so a tag
    /// read in place (`list_matches`) is compared without being built.
    fn compares(&self, weak: bool, tag: &str, strong: bool) -> bool {
        self.tag == tag && (!strong || (!self.weak && !weak))
    }

    /// Parses one entity tag; `None` when malformed.
    pub fn parse(s: &str) -> Option<EntityTag> {
        let (weak, tag) = parse_borrowed(s)?;
        Some(EntityTag {
            weak,
            tag: tag.to_owned(),
        })
    }
}

/// One entity tag as `(weak, opaque)`, borrowed from `s`; `None` when malformed.
fn parse_borrowed(s: &str) -> Option<(bool, &str)> {
    let s = s.trim();
    let (weak, rest) = match s.strip_prefix("W/") {
        Some(r) => (true, r),
        None => (false, s),
    };
    let tag = rest.strip_prefix('"')?.strip_suffix('"')?;
    if !is_tag_text(tag) {
        return None;
    }
    Some((weak, tag))
}

/// Whether every byte of `tag` (between its quotes) is an etagc = %x21 / %x23-7E / obs-text:
/// no quotes, no spaces, no controls. Every byte looked at, no early exit: the compiler
/// checks them 32 at a time (a 304's tag is 64 bytes; byte by byte, this check was 3% of its
/// instructions).
fn is_tag_text(tag: &str) -> bool {
    tag.bytes().fold(true, |ok, b| {
        ok & !((b == b'"') | (b <= 0x20) | (b == 0x7f))
    })
}

/// Whether the `If-Match` (`strong`) or `If-None-Match` list `s` matches the current tag, read
/// in place (what `TagList::parse` then `matches` answer, without building the list: the
/// request path asks this of every conditional request). `None`: the list is malformed or
/// empty, and the header is ignored.
pub fn list_matches(s: &str, current: Option<&EntityTag>, strong: bool) -> Option<bool> {
    // One strong tag and nothing else (what a client sends back): no list to split.
    if let Some(tag) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"'))
        && is_tag_text(tag)
    {
        return Some(current.is_some_and(|cur| cur.compares(false, tag, strong)));
    }
    if s.trim() == "*" {
        return Some(current.is_some());
    }
    let mut members = false;
    let mut matched = false;
    for part in split_list(s) {
        let (weak, tag) = parse_borrowed(part)?;
        members = true;
        matched |= current.is_some_and(|cur| cur.compares(weak, tag, strong));
    }
    members.then_some(matched)
}

impl std::fmt::Display for EntityTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.weak {
            f.write_str("W/")?;
        }
        write!(f, "\"{}\"", self.tag)
    }
}

/// A parsed `If-Match` / `If-None-Match` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagList {
    Any,
    Tags(Vec<EntityTag>),
}

impl TagList {
    /// Parses `*` or a comma-separated list; a list with any malformed member is `None`
    /// (the header is then ignored, as an invalid field).
    pub fn parse(s: &str) -> Option<TagList> {
        if s.trim() == "*" {
            return Some(TagList::Any);
        }
        let tags: Option<Vec<EntityTag>> = split_list(s).map(EntityTag::parse).collect();
        tags.filter(|t| !t.is_empty()).map(TagList::Tags)
    }

    /// Does the list match the current tag under `cmp`? `*` matches any existing representation.
    pub fn matches(
        &self,
        current: Option<&EntityTag>,
        cmp: fn(&EntityTag, &EntityTag) -> bool,
    ) -> bool {
        match (self, current) {
            (TagList::Any, Some(_)) => true,
            (TagList::Tags(tags), Some(cur)) => tags.iter().any(|t| cmp(t, cur)),
            (_, None) => false,
        }
    }
}

/// Splits a list on commas outside quoted strings (trimmed, empty members left out).
fn split_list(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let text = rest?;
        let mut quoted = false;
        let end = text.char_indices().find_map(|(i, c)| match c {
            '"' => {
                quoted = !quoted;
                None
            }
            ',' if !quoted => Some(i),
            _ => None,
        });
        match end {
            Some(i) => {
                rest = Some(&text[i + 1..]);
                Some(&text[..i])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
    .map(str::trim)
    .filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_compare() {
        let cases = [
            (r#""abc""#, Some((false, "abc"))),
            (r#"W/"abc""#, Some((true, "abc"))),
            (r#" "a,b" "#, Some((false, "a,b"))),
            ("abc", None),
            (r#""a"b""#, None),
            (r#""a b""#, None),
            (r#"w/"abc""#, None),
        ];
        for (s, want) in cases {
            let got = EntityTag::parse(s);
            assert_eq!(got.as_ref().map(|t| (t.weak, t.tag.as_str())), want, "{s}");
        }
        // RFC 9110 §8.8.3.2's comparison table.
        let (w1, w2, s1) = (
            EntityTag::parse(r#"W/"1""#).unwrap(),
            EntityTag::parse(r#"W/"2""#).unwrap(),
            EntityTag::parse(r#""1""#).unwrap(),
        );
        assert!(!w1.strong_eq(&w1) && w1.weak_eq(&w1));
        assert!(!w1.strong_eq(&w2) && !w1.weak_eq(&w2));
        assert!(!w1.strong_eq(&s1) && w1.weak_eq(&s1));
        assert!(s1.strong_eq(&s1) && s1.weak_eq(&s1));
        assert_eq!(s1.to_string(), r#""1""#);
        assert_eq!(w1.to_string(), r#"W/"1""#);
    }

    #[test]
    fn lists() {
        let cur = EntityTag::strong("x");
        let cases: [(&str, Option<bool>); 6] = [
            ("*", Some(true)),
            (r#""a", "x""#, Some(true)),
            (r#""a",W/"x""#, Some(true)),
            (r#""a", "b""#, Some(false)),
            (r#""a", bad"#, None),
            ("", None),
        ];
        for (s, want) in cases {
            let got = TagList::parse(s).map(|l| l.matches(Some(&cur), EntityTag::weak_eq));
            assert_eq!(got, want, "{s}");
        }
        assert!(!TagList::Any.matches(None, EntityTag::weak_eq));
    }

    #[test]
    fn a_list_read_in_place_answers_as_the_built_one() {
        let lists = [
            "*",
            " * ",
            r#""x""#,
            r#"W/"x""#,
            r#""a", "x""#,
            r#""a",W/"x""#,
            r#""a", "b""#,
            r#""a,x", "b""#,
            r#""x", bad"#,
            r#"bad, "x""#,
            r#""x",,"#,
            ", ,",
            "",
            "\"caf\u{e9}\", \"x\"",
            r#""x"#,
            // One quoted string: read without splitting, when it is one valid tag.
            r#""a,x""#,
            r#""""#,
            r#"""#,
            r#""x" "#,
            r#""x y""#,
            r#""x"x""#,
            "\"\u{e9}x\"",
            "\"x\u{7f}\"",
        ];
        let currents = [
            None,
            Some(EntityTag::strong("x")),
            Some(EntityTag::parse(r#"W/"x""#).unwrap()),
            Some(EntityTag::strong("a,x")),
        ];
        for s in lists {
            for cur in &currents {
                for (strong, cmp) in [
                    (
                        true,
                        EntityTag::strong_eq as fn(&EntityTag, &EntityTag) -> bool,
                    ),
                    (false, EntityTag::weak_eq),
                ] {
                    let built = TagList::parse(s).map(|l| l.matches(cur.as_ref(), cmp));
                    assert_eq!(
                        list_matches(s, cur.as_ref(), strong),
                        built,
                        "{s:?} {cur:?} strong={strong}"
                    );
                }
            }
        }
    }
}
