//! What can go wrong talking to Dropbox, with retryability on the error itself.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// 409 `…/not_found` (path, path_lookup).
    #[error("not found in Dropbox")]
    NotFound,
    /// 409 `path/not_file`: a folder where a file was asked for.
    #[error("not a file")]
    NotFile,
    /// 409 `path/not_folder`.
    #[error("not a folder")]
    NotFolder,
    /// 409 `path/malformed_path`: Dropbox refuses the path's form (the client's fault).
    #[error("Dropbox calls the path malformed")]
    MalformedPath,
    /// 409 `shared_link_access_denied`: the link wants a password, or is not for us.
    #[error("the shared link refuses access")]
    AccessDenied,
    /// 409 `unsupported_extension` / `unsupported_image` / `conversion_error`: Dropbox cannot
    /// make a thumbnail of this file.
    #[error("Dropbox cannot make a thumbnail of this file")]
    Unsupported,
    /// 409 `reset`: the cursor is no longer valid.
    #[error("cursor reset")]
    Reset,
    /// Any other 409 route error; the summary is for logs only.
    #[error("Dropbox route error {summary}")]
    Route { summary: String },
    /// 401 with its `AuthError` tag.
    #[error("Dropbox rejected the credentials ({tag})")]
    Auth { tag: String },
    /// 429, after the retry budget was spent.
    #[error("rate limited by Dropbox (retry after {retry_after:?})")]
    RateLimited { retry_after: Duration },
    /// 5xx.
    #[error("Dropbox answered {status}")]
    Server { status: u16 },
    /// 400: a request we built wrongly. The text is Dropbox's, for logs only.
    #[error("Dropbox refused the request as malformed: {0}")]
    BadRequest(String),
    /// Any other unexpected status.
    #[error("unexpected answer {status} from Dropbox")]
    Unexpected { status: u16 },
    #[error("cannot reach Dropbox: {0}")]
    Transport(#[source] hyper_util::client::legacy::Error),
    #[error("Dropbox's body broke off: {0}")]
    Body(#[source] hyper::Error),
    #[error("Dropbox did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot decode Dropbox's answer: {0}")]
    Decode(#[source] serde_json::Error),
    /// The bytes did not hash to the content hash Dropbox announced.
    #[error("Dropbox's bytes do not match their content hash")]
    Integrity,
    /// The token endpoint refused (its OAuth error code, e.g. `invalid_grant`).
    #[error("Dropbox's token endpoint answered {0}")]
    Token(String),
    /// The refresh token was refused (`invalid_grant`): the account must be linked again.
    #[error("Dropbox refused the refresh token (invalid_grant); the account must be linked again")]
    Relink,
    #[error("cannot build the request: {0}")]
    Request(#[source] hyper::http::Error),
}

/// Dropbox's error text made fit for a log: credentials it may echo (an `Authorization`
/// value, a token, a link's key) become `[redacted]`, control characters go, and it is cut to
/// 200 characters.
///
/// SECURITY: a 400's body quotes what it refused, e.g. `Invalid authorization value in HTTP
/// header "Authorization": "Bearer sl.abc…"`.
pub fn redact(text: &str) -> String {
    // Control characters go first, so none can split a scheme from its token and vanish
    // afterwards (found by fuzzing: `Beare\0r sl.…` came out as `Bearer sl.…`); line breaks and
    // tabs count as the spaces they stand for.
    let text: String = text
        .chars()
        .filter_map(|c| match c {
            '\t' | '\n' | '\r' | '\u{b}' | '\u{c}' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect();
    let mut out = String::new();
    let mut hide_next = false;
    for word in text.split_inclusive(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
        let core = word.trim_end_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'');
        let tail = &word[core.len()..];
        let lower = core.to_ascii_lowercase();
        let secretish = core.len() >= 16
            && core
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.~+/=:%".contains(c))
            && core.chars().any(|c| c.is_ascii_digit());
        if hide_next && !core.is_empty() || secretish || lower.contains("rlkey=") {
            out.push_str("[redacted]");
            hide_next = false;
        } else {
            out.push_str(core);
            if !core.is_empty() {
                // `Bearer`, but also `Authorization=Bearer` or `x:basic`: a word that ends in
                // a scheme hides the next (found by fuzzing: only the bare word did).
                let scheme = lower.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
                hide_next = scheme.ends_with("bearer") || scheme.ends_with("basic");
            }
        }
        out.push_str(tail);
    }
    out.chars().take(200).collect()
}

impl UpstreamError {
    /// The outcome label of a failed call in `dropcache_dropbox_requests_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            UpstreamError::NotFound
            | UpstreamError::NotFile
            | UpstreamError::NotFolder
            | UpstreamError::MalformedPath
            | UpstreamError::AccessDenied
            | UpstreamError::Unsupported
            | UpstreamError::Reset
            | UpstreamError::Route { .. } => "route_error",
            UpstreamError::Auth { .. } | UpstreamError::Token(_) | UpstreamError::Relink => {
                "auth_error"
            }
            UpstreamError::RateLimited { .. } => "rate_limited",
            UpstreamError::Server { .. } => "server_error",
            UpstreamError::BadRequest(_) => "bad_request",
            UpstreamError::Timeout(_) => "timeout",
            UpstreamError::Transport(_) | UpstreamError::Body(_) => "transport_error",
            UpstreamError::Unexpected { .. }
            | UpstreamError::Decode(_)
            | UpstreamError::Integrity
            | UpstreamError::Request(_) => "unexpected",
        }
    }

    /// Worth trying again with backoff: 5xx, transport failures and timeouts, 429.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            UpstreamError::Server { .. }
                | UpstreamError::Transport(_)
                | UpstreamError::Timeout(_)
                | UpstreamError::RateLimited { .. }
        )
    }

    /// How long Dropbox asked us to wait (429).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            UpstreamError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// Dropbox is failing (5xx, timeouts, unreachable, rate limiting) rather than saying
    /// something about the request: cached content may stand in (stale-if-error).
    pub fn is_outage(&self) -> bool {
        self.is_retryable() || matches!(self, UpstreamError::Body(_))
    }

    /// Dropbox could not be reached or did not answer in time (→ 504 rather than 502).
    pub fn is_timeout(&self) -> bool {
        matches!(self, UpstreamError::Timeout(_))
            || matches!(self, UpstreamError::Transport(e) if e.is_connect())
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn a_token_after_a_glued_scheme_is_hidden() {
        // The fuzzer's case, and a realistic one.
        for text in [
            "token_ty5Bearer sl.}",
            "bad header Authorization=Bearer sl.short",
            "auth:basic abc",
            // Fuzzing: a NUL inside the scheme, which used to go only after the check.
            "too/\"Beare\u{0}\u{0}r sl. \t\to",
            "Bear\u{7}er\nsl.abc",
        ] {
            let out = redact(text);
            assert!(
                !out.contains("sl.") && !out.contains("abc"),
                "{text:?} → {out:?}"
            );
            assert!(out.contains("[redacted]"), "{out}");
        }
    }

    #[test]
    fn echoed_credentials_never_reach_a_log() {
        let cases = [
            (
                r#"Error in call to API function "files/download": Invalid authorization value in HTTP header "Authorization": "Bearer sl.u.AbC123xyz""#,
                r#"Error in call to API function "files/download": Invalid authorization value in HTTP header "Authorization": "Bearer [redacted]""#,
            ),
            ("Basic dGVzdDpzZWNyZXQ=", "Basic [redacted]"),
            (
                "bad url https://www.dropbox.com/scl/fi/x/a.jpg?rlkey=abc",
                "bad url [redacted]",
            ),
            (
                "token 4f9c2a7e1b3d5f60aa is wrong",
                "token [redacted] is wrong",
            ),
            ("path/not_found/..", "path/not_found/.."),
            ("line\nbreak\u{7}", "line break"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
        assert_eq!(redact(&"x".repeat(500)).len(), 200);
        assert_eq!(redact("a\u{0}b\nc"), "ab c");
    }
}
