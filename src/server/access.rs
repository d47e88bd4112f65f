//! What the edge knows of each request: its id (`X-Request-Id`), the client behind trusted
//! proxies (`X-Forwarded-For`), and, once its answer's body is done, one access-log line and
//! the request metrics (`Metered`).
//!
//! The access line is nginx's "combined" format plus the cache status, Dropbox's share of the
//! time, the whole time and the request id:
//! `203.0.113.7 - - [22/Nov/2026:10:00:00 +0000] "GET /alice/a.jpg HTTP/1.1" 200 5120 "-" "curl/8.0"
//! cache=HIT upstream=- rt=0.001 id=3f2a…`

use crate::config::LogFormat;
use crate::http::CacheStatus;
use crate::http::provenance::Provenance;
use crate::http::{Body, BoxError};
use crate::metrics::{Http, Served};
use crate::telemetry::PerSecond;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Response, Version};
use ipnet::IpNet;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

/// The response header (and accepted request header) carrying the request id. A
/// `HeaderName`, not a `&str`: a name given as text is parsed (and copied, on insert) at
/// each use.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The header a trusted proxy names the client in.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// A request's id: 1–64 of `A-Za-z0-9._-`, held inline (a request allocates nothing for it).
#[derive(Clone, Copy)]
pub struct RequestId {
    bytes: [u8; 64],
    len: u8,
}

impl RequestId {
    /// `text` if it is a sane id.
    fn parse(text: &[u8]) -> Option<RequestId> {
        let sane = (1..=64).contains(&text.len())
            && text
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b));
        sane.then(|| {
            let mut bytes = [0; 64];
            bytes[..text.len()].copy_from_slice(text);
            RequestId {
                bytes,
                len: text.len() as u8,
            }
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).expect("checked to be ASCII")
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The request's id: the one a trusted proxy (nginx) sent if it looks like an id (1–64 of
/// `A-Za-z0-9._-`), else a new one.
pub fn request_id(headers: &HeaderMap, from_trusted: bool) -> RequestId {
    from_trusted
        .then(|| headers.get(X_REQUEST_ID))
        .flatten()
        .and_then(|v| RequestId::parse(v.as_bytes()))
        .unwrap_or_else(new_id)
}

/// A new request id: 32 hex digits, a count scrambled by a bijection keyed by this process
/// (so unique within it, and no two ids share a prefix) then this process's random half
/// (unique across processes but for a 1 in 2^64 chance). No random draw per request.
fn new_id() -> RequestId {
    static PROCESS: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let (key, process) = *PROCESS.get_or_init(rand::random);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // splitmix64's finalizer: a bijection on u64.
    let mut z = n.wrapping_add(key);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    // By table, not by `format!` (a tenth of the id's cost on a 304's profile).
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&z.to_be_bytes());
    bytes[8..].copy_from_slice(&process.to_be_bytes());
    let mut out = [0u8; 32];
    hex::encode_to_slice(bytes, &mut out).expect("32 digits for 16 bytes");
    RequestId::parse(&out).expect("hex digits are an id")
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then the last
/// address in `X-Forwarded-For` (all such headers, in order) that is not itself a trusted
/// proxy. SECURITY: addresses a client wrote further left are never believed.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    if !is_trusted(&peer, trusted) {
        return peer;
    }
    let forwarded = headers.get_all(X_FORWARDED_FOR);
    if forwarded.iter().next().is_none() {
        return peer;
    }
    let hops: Vec<&str> = forwarded
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    // From the right: the hops our own proxies appended. The first that is not one of them
    // is the client; anything unreadable before it ends the walk (left of it is unverified).
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip, trusted) => client = ip,
            Ok(ip) => return ip,
            Err(_) => break,
        }
    }
    client
}

/// Whether `ip` is one of the proxies in front (`server.trusted_proxies`).
pub fn is_trusted(ip: &IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(ip))
}

/// `[22/Nov/2026:10:00:00 +0000]`'s inside, in UTC, from the HTTP date of `t`.
pub fn clf_time(t: SystemTime) -> String {
    // "Sun, 22 Nov 2026 10:00:00 GMT": fixed width (RFC 9110 IMF-fixdate).
    let d = httpdate::fmt_http_date(t);
    format!(
        "{}/{}/{}:{} +0000",
        &d[5..7],
        &d[8..11],
        &d[12..16],
        &d[17..25]
    )
}

/// The most of a target or header value the log writes (its first bytes, before escaping).
const LOGGED_MAX: usize = 512;

/// `bytes` as the log writes them, into `out`: quotes, backslashes and control bytes escaped
/// as `\xHH` (as nginx does), at most `*budget` of them (what is left is taken off it).
fn escape_into(out: &mut Vec<u8>, bytes: &[u8], budget: &mut usize) {
    let bytes = &bytes[..bytes.len().min(*budget)];
    *budget -= bytes.len();
    let plain = |b: u8| (0x20..0x7f).contains(&b) & (b != b'"') & (b != b'\\');
    // Nearly always nothing to escape: one pass (a fold with no early exit), then one copy.
    if bytes.iter().fold(true, |ok, &b| ok & plain(b)) {
        out.extend_from_slice(bytes);
        return;
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if plain(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
        }
    }
}

/// A header's value for the log: `-` when absent, else escaped (`escape_into`).
fn write_header(out: &mut Vec<u8>, v: Option<&HeaderValue>) {
    match v {
        None => out.push(b'-'),
        Some(v) => {
            let mut budget = LOGGED_MAX;
            escape_into(out, v.as_bytes(), &mut budget);
        }
    }
}

/// The request target as the access log writes it, escaped.
///
/// SECURITY: an OAuth callback's query holds the authorization code and state; a shared link
/// named by URL holds its key (`rlkey`) in its first segment. Both are redacted; a configured
/// link's name is kept.
fn write_target(out: &mut Vec<u8>, route: &str, uri: &hyper::Uri) {
    let mut budget = LOGGED_MAX;
    let budget = &mut budget;
    let path = uri.path();
    match path.strip_prefix("/s/") {
        Some(rest) if route.starts_with("/s/") => {
            let (segment, inner) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            if crate::http::route::valid_alias(segment) {
                escape_into(out, path.as_bytes(), budget);
            } else {
                escape_into(out, b"/s/[redacted]", budget);
                escape_into(out, inner.as_bytes(), budget);
            }
        }
        _ => escape_into(out, path.as_bytes(), budget),
    }
    match uri.query() {
        Some(_) if route.starts_with("/oauth/") => out.extend_from_slice(b"?[redacted]"),
        Some(q) => {
            escape_into(out, b"?", budget);
            escape_into(out, q.as_bytes(), budget);
        }
        None => {}
    }
}

/// The `Referer` as the access log writes it. SECURITY: a page served from a link named by
/// URL sends that URL (its key) as the Referer of everything it loads: such a referer is
/// redacted as the request target is.
fn write_referer(out: &mut Vec<u8>, v: Option<&HeaderValue>) {
    // Only a referer with `/s/` in it can have a path that starts so: no other is parsed.
    let link = v
        .filter(|v| v.as_bytes().windows(3).any(|w| w == b"/s/"))
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<hyper::Uri>().ok())
        .filter(|uri| uri.path().starts_with("/s/"));
    let Some(uri) = link else {
        return write_header(out, v);
    };
    if let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.authority()) {
        out.extend_from_slice(scheme.as_bytes());
        out.extend_from_slice(b"://");
        let mut budget = LOGGED_MAX;
        escape_into(out, host.as_str().as_bytes(), &mut budget);
    }
    write_target(out, "/s/{link}/{path}", &uri);
}

/// What `write` writes, as text (the JSON log's fields, tests).
fn text(write: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut out = Vec::new();
    write(&mut out);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// What the edge needs to count and log requests: the request metrics, the log settings, and
/// the proxies whose `X-Forwarded-For` and `X-Request-Id` are believed.
pub struct Log {
    pub http: Http,
    /// `log.access_log`: write a line per request.
    pub enabled: bool,
    pub format: LogFormat,
    pub trusted_proxies: Vec<IpNet>,
}

/// A request as the access log and the metrics see it, finished by `Metered`.
pub struct Record {
    pub log: Arc<Log>,
    pub route: &'static str,
    pub method: Method,
    /// For the access log only (when it is off: `/` and none), as sent: the request target, its
    /// `Referer` and `User-Agent` (clones of hyper's buffers, not copies), escaped and
    /// redacted as the line is written.
    pub uri: hyper::Uri,
    pub referer: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    pub version: Version,
    pub client: IpAddr,
    pub id: RequestId,
    pub arrived: SystemTime,
    pub started: Instant,
    pub status: u16,
    pub cache: &'static str,
    pub source: &'static str,
    pub upstream: Option<Duration>,
    /// Counted and logged already.
    finished: bool,
}

/// A request that ended before it was answered (the client went away): nginx's 499.
const CLIENT_CLOSED: u16 = 499;

impl Drop for Record {
    fn drop(&mut self) {
        if !self.finished {
            if self.status == 0 {
                self.status = CLIENT_CLOSED;
            }
            self.finish(0);
        }
    }
}

impl Record {
    /// Starts the record of a request from `peer`: its id and client (through trusted proxies)
    /// and what the log needs from its head.
    pub fn begin(
        log: Arc<Log>,
        route: &'static str,
        parts: &hyper::http::request::Parts,
        peer: IpAddr,
    ) -> Record {
        let trusted = &log.trusted_proxies;
        let id = request_id(&parts.headers, is_trusted(&peer, trusted));
        let client = client_addr(peer, &parts.headers, trusted);
        let logged_now = log.enabled;
        let header = |name| {
            logged_now
                .then(|| parts.headers.get(name).cloned())
                .flatten()
        };
        Record {
            log,
            route,
            method: parts.method.clone(),
            uri: if logged_now {
                parts.uri.clone()
            } else {
                hyper::Uri::default()
            },
            referer: header(hyper::header::REFERER),
            user_agent: header(hyper::header::USER_AGENT),
            version: parts.version,
            client,
            id,
            arrived: if logged_now {
                SystemTime::now()
            } else {
                SystemTime::UNIX_EPOCH
            },
            started: Instant::now(),
            status: 0,
            cache: "none",
            source: "generated",
            upstream: None,
            finished: false,
        }
    }

    /// Notes the answer's head, and what the read path `noted` of its body.
    pub fn answered<B>(&mut self, resp: &Response<B>, noted: &Provenance) {
        self.status = resp.status().as_u16();
        self.cache = CacheStatus::of(resp).map_or("none", CacheStatus::as_str);
        if let Some(s) = noted.source() {
            self.source = s;
        }
        self.upstream = noted.upstream();
    }

    /// Counts the request and writes its access-log line, once.
    fn finish(&mut self, bytes: u64) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let elapsed = self.started.elapsed();
        self.log.http.observe(&Served {
            route: self.route,
            method: self.method.as_str(),
            status: self.status,
            cache: self.cache,
            source: if bytes == 0 { "generated" } else { self.source },
            bytes,
            elapsed,
        });
        if !self.log.enabled {
            return;
        }
        // Written straight into the log's own buffer: no line is built first.
        let line = Line {
            record: self,
            bytes,
            elapsed,
        };
        match self.log.format {
            LogFormat::Text => {
                crate::telemetry::access_line(self.arrived + elapsed, |out| line.write(out))
            }
            LogFormat::Json => tracing::info!(
                target: "access",
                client = %self.client,
                method = %self.method,
                target_uri = text(|o| write_target(o, self.route, &self.uri)),
                status = self.status,
                bytes,
                referer = text(|o| write_referer(o, self.referer.as_ref())),
                user_agent = text(|o| write_header(o, self.user_agent.as_ref())),
                cache = self.cache,
                upstream_seconds = self.upstream.map(|d| d.as_secs_f64()),
                seconds = elapsed.as_secs_f64(),
                request_id = %self.id,
                route = self.route,
                "{}",
                text(|o| line.write(o))
            ),
        }
    }
}

/// A finished request's access line.
struct Line<'a> {
    record: &'a Record,
    bytes: u64,
    elapsed: Duration,
}

impl Line<'_> {
    /// Writes the line into `out`, byte by byte (through `fmt`, a logged hit's line cost as
    /// much as the rest of its answer).
    fn write(&self, out: &mut Vec<u8>) {
        let r = self.record;
        let mut n = itoa::Buffer::new();
        match r.client {
            IpAddr::V4(ip) => {
                for (i, octet) in ip.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push(b'.');
                    }
                    out.extend_from_slice(n.format(octet).as_bytes());
                }
            }
            IpAddr::V6(ip) => {
                use std::io::Write;
                let _ = write!(out, "{ip}");
            }
        }
        out.extend_from_slice(b" - - [");
        let second = r
            .arrived
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        CLF_NOW.with_borrow_mut(|t| out.extend_from_slice(t.text(second, clf_time).as_bytes()));
        out.extend_from_slice(b"] \"");
        out.extend_from_slice(r.method.as_str().as_bytes());
        out.push(b' ');
        write_target(out, r.route, &r.uri);
        out.push(b' ');
        out.extend_from_slice(version(r.version).as_bytes());
        out.extend_from_slice(b"\" ");
        out.extend_from_slice(n.format(r.status).as_bytes());
        out.push(b' ');
        out.extend_from_slice(n.format(self.bytes).as_bytes());
        out.extend_from_slice(b" \"");
        write_referer(out, r.referer.as_ref());
        out.extend_from_slice(b"\" \"");
        write_header(out, r.user_agent.as_ref());
        out.extend_from_slice(b"\" cache=");
        out.extend_from_slice(if r.cache == "none" { "-" } else { r.cache }.as_bytes());
        out.extend_from_slice(b" upstream=");
        match r.upstream {
            Some(d) => write_seconds(out, d),
            None => out.push(b'-'),
        }
        out.extend_from_slice(b" rt=");
        write_seconds(out, self.elapsed);
        out.extend_from_slice(b" id=");
        out.extend_from_slice(r.id.as_bytes());
    }
}

/// The protocol as a request line names it (what `Version`'s `Debug` writes).
fn version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}

/// Seconds to the millisecond, as nginx's `$request_time`: `0.004` (integers, not a float's
/// formatting).
fn write_seconds(out: &mut Vec<u8>, d: Duration) {
    let ms = u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .saturating_add(500)
        / 1000;
    out.extend_from_slice(itoa::Buffer::new().format(ms / 1000).as_bytes());
    let frac = ms % 1000;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

thread_local! {
    /// The last second's `clf_time`, per thread.
    static CLF_NOW: std::cell::RefCell<PerSecond> = const {
        std::cell::RefCell::new(PerSecond::new())
    };
}

/// A response body that counts what it hands over and, when it ends or is dropped (the client
/// went away), finishes its `Record` once.
pub struct Metered {
    inner: Body,
    /// Boxed: a response is moved a dozen times on its way out, and a record is hundreds
    /// of bytes (one allocation costs less than copying it each time).
    record: Option<Box<Record>>,
    bytes: u64,
}

impl Metered {
    pub fn new(inner: Body, record: Box<Record>) -> Metered {
        Metered {
            inner,
            record: Some(record),
            bytes: 0,
        }
    }

    fn finish(&mut self) {
        if let Some(mut r) = self.record.take() {
            r.finish(self.bytes);
        }
    }
}

impl hyper::body::Body for Metered {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None | Some(Err(_))) => this.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_client_is_the_last_untrusted_forwarded_address() {
        let trusted: Vec<IpNet> = vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let cases: &[(IpAddr, &[&str], &str)] = &[
            // behind nginx: the address nginx appended
            (lo, &["203.0.113.7"], "203.0.113.7"),
            // a client's own claim further left is not believed
            (lo, &["1.2.3.4, 203.0.113.7"], "203.0.113.7"),
            // trusted hops are skipped, over several headers
            (
                lo,
                &["198.51.100.2", "203.0.113.7, 10.1.2.3"],
                "203.0.113.7",
            ),
            // no header: the peer
            (lo, &[], "127.0.0.1"),
            // garbage stops the walk: the peer
            (lo, &["nonsense"], "127.0.0.1"),
            // a forged address hidden behind junk is never reached
            (lo, &["6.6.6.6, junk, 203.0.113.7"], "203.0.113.7"),
            (lo, &["6.6.6.6, junk"], "127.0.0.1"),
            // only trusted hops: the leftmost of them
            (lo, &["10.9.9.9"], "10.9.9.9"),
            // an untrusted peer's header is ignored
            (ip("192.0.2.9"), &["203.0.113.7"], "192.0.2.9"),
        ];
        for (peer, headers, want) in cases {
            assert_eq!(
                client_addr(*peer, &xff(headers), &trusted),
                ip(want),
                "{peer} {headers:?}"
            );
        }
    }

    #[test]
    fn request_ids_are_taken_when_sane_and_made_otherwise() {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("abc-123.X_y"));
        assert_eq!(request_id(&h, true).as_str(), "abc-123.X_y");
        assert_ne!(
            request_id(&h, false).as_str(),
            "abc-123.X_y",
            "only from a trusted proxy"
        );
        let longest = "a".repeat(64);
        h.insert(X_REQUEST_ID, HeaderValue::from_str(&longest).unwrap());
        assert_eq!(request_id(&h, true).as_str(), longest);
        for bad in ["has space", &"a".repeat(65), ""] {
            h.insert(X_REQUEST_ID, HeaderValue::from_str(bad).unwrap());
            let made = request_id(&h, true);
            assert_eq!(made.as_str().len(), 32, "{bad:?}");
            assert!(made.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
            assert_ne!(request_id(&HeaderMap::new(), true).as_str(), made.as_str());
        }
    }

    #[test]
    fn times_are_written_to_the_millisecond() {
        let cases = [
            (0, "0.000"),
            (499, "0.000"),
            (500, "0.001"),
            (1_234_567, "1.235"),
            (59_999_600, "60.000"),
        ];
        for (us, want) in cases {
            let written = text(|o| write_seconds(o, Duration::from_micros(us)));
            assert_eq!(written, want, "{us}");
        }
    }

    #[test]
    fn log_fields_are_escaped_and_dated_like_nginx() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_345_200);
        assert_eq!(clf_time(t), "22/Nov/2026:11:00:00 +0000");
        let escaped = |b: &[u8], budget: usize| text(|o| escape_into(o, b, &mut { budget }));
        assert_eq!(escaped(b"a\"b\\c\x01\xff", 512), "a\\x22b\\x5Cc\\x01\\xFF");
        assert_eq!(escaped(b"plain text", 512), "plain text");
        assert_eq!(escaped(b"plain text", 5), "plain");
        assert_eq!(escaped(&[b'"'; 600], 512), "\\x22".repeat(512));
        assert_eq!(text(|o| write_header(o, None)), "-");
    }

    #[test]
    fn secrets_in_targets_are_redacted() {
        let cases = [
            (
                "/s/{link}/{path}",
                "/s/photos/a.jpg?thumb=w64h64",
                "/s/photos/a.jpg?thumb=w64h64",
            ),
            (
                "/s/{link}/{path}",
                "/s/https%3A%2F%2Fwww.dropbox.com%2Fscl%2Ffo%2Fx%2Fy%3Frlkey%3DSECRET/a.jpg",
                "/s/[redacted]/a.jpg",
            ),
            (
                "/s/{link}/{path}",
                "/s/https%3A%2F%2Fwww.dropbox.com%2Fs%2Fkey",
                "/s/[redacted]",
            ),
            (
                "/oauth/callback",
                "/oauth/callback?code=C&state=S",
                "/oauth/callback?[redacted]",
            ),
            ("/{alias}/{path}", "/alice/s/x?a=1", "/alice/s/x?a=1"),
        ];
        for (route, target, want) in cases {
            let uri: hyper::Uri = target.parse().unwrap();
            assert_eq!(text(|o| write_target(o, route, &uri)), want, "{target}");
        }
        let referer =
            |s: &str| text(|o| write_referer(o, Some(&HeaderValue::from_str(s).unwrap())));
        assert_eq!(
            referer(
                "https://cdn.example/s/https%3A%2F%2Fwww.dropbox.com%2Fs%2Fk%3Frlkey%3DX/i.html"
            ),
            "https://cdn.example/s/[redacted]/i.html"
        );
        assert_eq!(
            referer("https://cdn.example/s/photos/i.html"),
            "https://cdn.example/s/photos/i.html"
        );
        assert_eq!(
            referer("https://example.org/page?q=1"),
            "https://example.org/page?q=1"
        );
        assert_eq!(text(|o| write_referer(o, None)), "-");
    }

    #[test]
    fn an_access_line_is_written_whole_escaped_and_redacted() {
        let log = Arc::new(Log {
            http: crate::metrics::Metrics::new().http,
            enabled: true,
            format: LogFormat::Text,
            trusted_proxies: Vec::new(),
        });
        let (parts, ()) = hyper::Request::get(
            "/s/https%3A%2F%2Fwww.dropbox.com%2Fs%2Fk%3Frlkey%3DX/a%20b.jpg?w=1",
        )
        .header("user-agent", "Mozilla \"5\"\t")
        .header("referer", "https://cdn.example/page")
        .body(())
        .unwrap()
        .into_parts();
        let peer = "2001:db8::1".parse().unwrap();
        let mut r = Record::begin(log, "/s/{link}/{path}", &parts, peer);
        r.arrived = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_345_200);
        r.status = 200;
        r.cache = "HIT";
        r.upstream = Some(Duration::from_micros(1_500));
        let line = Line {
            record: &r,
            bytes: 5120,
            elapsed: Duration::from_micros(4_400),
        };
        assert_eq!(
            text(|o| line.write(o)),
            format!(
                "2001:db8::1 - - [22/Nov/2026:11:00:00 +0000] \"GET /s/[redacted]/a%20b.jpg?w=1 \
                 HTTP/1.1\" 200 5120 \"https://cdn.example/page\" \"Mozilla \\x225\\x22\\x09\" \
                 cache=HIT upstream=0.002 rt=0.004 id={}",
                r.id
            )
        );
        let v4 = Record::begin(
            r.log.clone(),
            "/{alias}/{path}",
            &parts,
            "203.0.113.7".parse().unwrap(),
        );
        let line = Line {
            record: &v4,
            bytes: 0,
            elapsed: Duration::ZERO,
        };
        assert!(text(|o| line.write(o)).starts_with("203.0.113.7 - - ["));
        // Counted and logged by neither (the test's records).
        r.finished = true;
        let mut v4 = v4;
        v4.finished = true;
    }
}
