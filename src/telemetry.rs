//! Logging: `tracing` to stderr as text or JSON lines, filtered by `log.level` (or `RUST_LOG`
//! at start), and that filter changeable while running (`LogControl`: SIGHUP, `PUT
//! /admin/log`). The access log is the target `access` at INFO, one line per request (see
//! `server::access`); `log.access_log` keeps it on whatever the level says. In text to a file
//! or pipe, the access lines are written by `access_line` itself, as the formatter would write
//! them but without its per-character escaping (the line is escaped already): a tenth of a hit's
//! time, measured. The line is written byte by byte into the batch, not through `fmt`.
//!
//! On the runtime's worker threads those lines are gathered and written together: when the
//! worker runs out of work (`flush_parked`, the runtime's park hook), when they reach
//! `ACCESS_BATCH` bytes, or when the oldest is a second old. One `write` per batch instead of
//! one per request: a fifth of a logged 1 KiB hit's CPU, measured. An idle proxy has written
//! every line; a SIGKILL under full load can lose the batch under way (at most 32 KiB, a
//! second). Other threads, and every other line, write at once.

use crate::config::{LogConfig, LogFormat};
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// The access log's target.
pub const ACCESS: &str = "access";

/// Whether `access_line` writes to stderr itself (set by `init_with` for text to a non-terminal).
static DIRECT: AtomicBool = AtomicBool::new(false);

/// A batch of access lines is written once it holds this many bytes.
const ACCESS_BATCH: usize = 32 << 10;

/// This thread's access lines not yet written.
struct Batch {
    buf: Vec<u8>,
    /// Whether this thread gathers lines (a worker of the runtime, seen parking): others write
    /// each line at once.
    gathers: bool,
    /// When (unix seconds) the oldest line in `buf` was added.
    since: u64,
}

impl Batch {
    fn write_out(&mut self) {
        if !self.buf.is_empty() {
            let _ = std::io::stderr().lock().write_all(&self.buf);
            self.buf.clear();
        }
        // A pathological line does not keep its memory.
        self.buf.shrink_to(ACCESS_BATCH + 4096);
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.write_out();
    }
}

thread_local! {
    static BATCH: std::cell::RefCell<Batch> = const {
        std::cell::RefCell::new(Batch { buf: Vec::new(), gathers: false, since: 0 })
    };
}

/// Runs `f` on this thread's batch; false if there is none to use (the thread is being torn
/// down, or the batch is in use further up the stack).
fn with_batch(f: impl FnOnce(&mut Batch)) -> bool {
    BATCH
        .try_with(|b| b.try_borrow_mut().map(|mut b| f(&mut b)).is_ok())
        .unwrap_or(false)
}

/// The runtime's park hook (`on_thread_park`): writes this worker's gathered access lines,
/// and from now on lets it gather them.
pub fn flush_parked() {
    with_batch(|b| {
        b.gathers = true;
        b.write_out();
    });
}

/// Writes this thread's gathered access lines (the runtime's `on_thread_stop` hook).
pub fn flush_access() {
    with_batch(Batch::write_out);
}

/// Writes one access-log line (the target `access` at INFO, if the filter lets it through):
/// `2026-11-22T10:00:00.000000Z  INFO access: <line>`, `line` written by `write` (ASCII, escaped
/// already) straight into the batch, in one write, as the text formatter would (without
/// colour); or through `tracing` where the proxy's subscriber is not in charge (a terminal;
/// tests that capture events). `now` is the line's time.
pub fn access_line(now: std::time::SystemTime, write: impl FnOnce(&mut Vec<u8>)) {
    if !DIRECT.load(Ordering::Relaxed) {
        let mut line = Vec::new();
        write(&mut line);
        tracing::info!(target: ACCESS, "{}", String::from_utf8_lossy(&line));
        return;
    }
    if !tracing::enabled!(target: ACCESS, tracing::Level::INFO) {
        return;
    }
    let since_epoch = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut write = Some(write);
    let batched = with_batch(|b| {
        if b.buf.is_empty() {
            b.since = since_epoch.as_secs();
        }
        whole_line(&mut b.buf, since_epoch, write.take().expect("written once"));
        if !b.gathers || b.buf.len() >= ACCESS_BATCH || since_epoch.as_secs() > b.since {
            b.write_out();
        }
    });
    // A request finished while its thread is being torn down (the runtime stopping): its
    // batch is gone, so the line goes out alone.
    if let Some(write) = write.filter(|_| !batched) {
        let mut line = Vec::new();
        whole_line(&mut line, since_epoch, write);
        let _ = std::io::stderr().lock().write_all(&line);
    }
}

/// An access line whole: its stamp, level and target, the line `write` writes, its newline.
fn whole_line(
    out: &mut Vec<u8>,
    since_epoch: std::time::Duration,
    write: impl FnOnce(&mut Vec<u8>),
) {
    STAMP.with_borrow_mut(|s| write_stamp(s, out, since_epoch));
    out.extend_from_slice(b"  INFO ");
    out.extend_from_slice(ACCESS.as_bytes());
    out.extend_from_slice(b": ");
    write(out);
    out.push(b'\n');
}

/// A time's text that changes once a second, made again only when the second changes (as
/// nginx caches its time strings): kept per thread for the access line's stamp and its CLF
/// time.
pub struct PerSecond {
    second: u64,
    text: String,
}

impl Default for PerSecond {
    fn default() -> Self {
        PerSecond::new()
    }
}

impl PerSecond {
    pub const fn new() -> PerSecond {
        PerSecond {
            second: u64::MAX,
            text: String::new(),
        }
    }

    /// The text of `second` (unix seconds): the one kept, or what `make` makes of it.
    pub fn text(
        &mut self,
        second: u64,
        make: impl FnOnce(std::time::SystemTime) -> String,
    ) -> &str {
        if second != self.second {
            self.text = make(std::time::UNIX_EPOCH + std::time::Duration::from_secs(second));
            self.second = second;
        }
        &self.text
    }
}

thread_local! {
    /// The last second's `2026-11-22T10:00:00.`.
    static STAMP: std::cell::RefCell<PerSecond> = const {
        std::cell::RefCell::new(PerSecond::new())
    };
}

/// A line's time, `since_epoch`: its second's `2026-11-22T10:00:00.` (kept in `stamps`) and six
/// digits of microseconds, as humantime's RFC 3339 with microseconds writes it, without
/// working the date out again.
fn write_stamp(stamps: &mut PerSecond, out: &mut Vec<u8>, since_epoch: std::time::Duration) {
    let second = stamps.text(since_epoch.as_secs(), |whole| {
        // `2026-11-22T10:00:00Z`: the second's 19 bytes, then the fraction's dot.
        let mut text = humantime::format_rfc3339_seconds(whole).to_string();
        text.truncate(19);
        text.push('.');
        text
    });
    out.extend_from_slice(second.as_bytes());
    let mut digits = [b'0'; 6];
    let mut n = since_epoch.subsec_micros();
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits);
    out.push(b'Z');
}

/// Changes the running process's log filter.
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    /// The level as last set (without the access-log directive).
    level: Mutex<String>,
    access_log: bool,
}

impl LogControl {
    /// The level in force.
    pub fn level(&self) -> String {
        self.level.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sets the level (`EnvFilter` syntax, checked by `config::parse_level`); says why not.
    pub fn set_level(&self, level: &str) -> Result<(), String> {
        let level = crate::config::parse_level(level)?;
        let filter = filter(&level, self.access_log);
        self.handle.reload(filter).map_err(|e| e.to_string())?;
        *self.level.lock().unwrap_or_else(|p| p.into_inner()) = level;
        Ok(())
    }
}

/// `level`, with the access log kept at INFO when it is on.
fn filter(level: &str, access_log: bool) -> EnvFilter {
    let mut text = level.to_owned();
    let names_access = level
        .split(',')
        .any(|d| d.trim() == ACCESS || d.trim().starts_with(&format!("{ACCESS}=")));
    if access_log && !names_access {
        text.push_str(&format!(",{ACCESS}=info"));
    } else if !access_log {
        text.push_str(&format!(",{ACCESS}=off"));
    }
    EnvFilter::builder()
        .parse(&text)
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber for the proxy; None if one was installed already. `RUST_LOG`,
/// when set, replaces `log.level` at start.
pub fn init_with(config: &LogConfig) -> Option<LogControl> {
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|l| crate::config::parse_level(&l).ok())
        .unwrap_or_else(|| config.level.clone());
    let (layer, handle) = reload::Layer::new(filter(&level, config.access_log));
    // Colours only for a terminal: not in journald, files or pipes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let text = (config.format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
    });
    let json = (config.format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
    });
    tracing_subscriber::registry()
        .with(layer)
        .with(text)
        .with(json)
        .try_init()
        .ok()?;
    DIRECT.store(config.format == LogFormat::Text && !ansi, Ordering::Relaxed);
    Some(LogControl {
        handle,
        level: Mutex::new(level),
        access_log: config.access_log,
    })
}

/// Installs a text subscriber at `RUST_LOG` (default `info`), for the commands other than the
/// proxy; later calls are no-ops.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn line_times_are_humantimes_rfc3339_with_microseconds() {
        let mut stamps = PerSecond::new();
        // The same second twice (the cached text), the next, and a far one.
        for micros in [
            1_795_345_200_000_000u64,
            1_795_345_200_123_456,
            1_795_345_201_000_007,
            4_102_444_799_999_999,
            0,
        ] {
            let since = Duration::from_micros(micros);
            let mut out = Vec::new();
            write_stamp(&mut stamps, &mut out, since);
            let want = humantime::format_rfc3339_micros(UNIX_EPOCH + since).to_string();
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }
}
