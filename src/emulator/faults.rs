//! Fault injection (latency, 429 / 5xx shares per route, slow / stalled / cut bodies) and the
//! request log that tests read to prove how many calls a client made.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// 429 `too_many_requests` with `Retry-After` (seconds).
    RateLimit { retry_after: u64 },
    /// A 5xx (or any) status with a plain body.
    Status(u16),
    /// Body at about this many bytes per second.
    Slow { bytes_per_sec: u64 },
    /// Body stops after this many bytes and the connection stays open.
    Stall { after: u64 },
    /// Body cut (connection aborted) after this many bytes.
    Cut { after: u64 },
}

impl FaultKind {
    /// Applies to a response body rather than replacing the response.
    pub fn is_body(self) -> bool {
        matches!(
            self,
            FaultKind::Slow { .. } | FaultKind::Stall { .. } | FaultKind::Cut { .. }
        )
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "bad fault {input:?}: {why} (kinds: 429[:SECS], 500..599, slow:BYTES_PER_SEC, stall:BYTES, cut:BYTES)"
)]
pub struct FaultParseError {
    input: String,
    why: &'static str,
}

impl FromStr for FaultKind {
    type Err = FaultParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| FaultParseError {
            input: s.to_owned(),
            why,
        };
        let (name, value) = match s.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        let number = |v: Option<&str>| -> Result<u64, FaultParseError> {
            v.ok_or_else(|| err("missing a number after ':'"))?
                .parse()
                .map_err(|_| err("not a whole number"))
        };
        Ok(match name {
            "429" => FaultKind::RateLimit {
                retry_after: value.map_or(Ok(1), |v| number(Some(v)))?,
            },
            "slow" => FaultKind::Slow {
                bytes_per_sec: number(value)?.max(1),
            },
            "stall" => FaultKind::Stall {
                after: number(value)?,
            },
            "cut" => FaultKind::Cut {
                after: number(value)?,
            },
            code => match code.parse::<u16>() {
                Ok(c) if (400..=599).contains(&c) && value.is_none() => FaultKind::Status(c),
                _ => return Err(err("unknown kind")),
            },
        })
    }
}

/// One rule: which routes, what happens, how often.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// A route (`files/download`), a prefix (`files/*`) or `*`.
    pub route: String,
    /// `429[:SECS]`, a status code, `slow:BPS`, `stall:BYTES` or `cut:BYTES`.
    pub kind: String,
    /// Share of matching requests hit, 0..=1.
    #[serde(default = "one")]
    pub share: f64,
    /// Stop after this many hits.
    #[serde(default)]
    pub times: Option<u32>,
    #[serde(skip)]
    parsed: Option<FaultKind>,
}

fn one() -> f64 {
    1.0
}

impl FaultRule {
    fn matches(&self, route: &str) -> bool {
        self.route == "*"
            || self.route == route
            || self
                .route
                .strip_suffix('*')
                .is_some_and(|p| route.starts_with(p))
    }

    fn validate(mut self) -> Result<Self, FaultParseError> {
        self.parsed = Some(self.kind.parse()?);
        if !(0.0..=1.0).contains(&self.share) {
            return Err(FaultParseError {
                input: self.kind,
                why: "share must be between 0 and 1",
            });
        }
        Ok(self)
    }
}

impl FromStr for FaultRule {
    type Err = FaultParseError;

    /// `ROUTE=KIND[,share=F][,times=N]`, e.g. `files/download=cut:1000,times=1`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| FaultParseError {
            input: s.to_owned(),
            why,
        };
        let (route, rest) = s
            .split_once('=')
            .ok_or_else(|| err("expected ROUTE=KIND"))?;
        let mut parts = rest.split(',');
        let kind = parts.next().unwrap_or_default().to_owned();
        let mut rule = FaultRule {
            route: route.to_owned(),
            kind,
            share: 1.0,
            times: None,
            parsed: None,
        };
        for part in parts {
            match part.split_once('=') {
                Some(("share", v)) => rule.share = v.parse().map_err(|_| err("bad share"))?,
                Some(("times", v)) => rule.times = Some(v.parse().map_err(|_| err("bad times"))?),
                _ => return Err(err("expected share=F or times=N after the kind")),
            }
        }
        rule.validate()
    }
}

/// The fault settings: set at start (`--fault`, `--latency`) or through the admin route.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Added before every API answer.
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default)]
    pub rules: Vec<FaultRule>,
    /// `backoff` to put in every longpoll answer.
    #[serde(default)]
    pub longpoll_backoff: Option<u64>,
}

impl Faults {
    /// Validates rules that came in as JSON.
    pub fn validated(mut self) -> Result<Self, FaultParseError> {
        self.rules = self
            .rules
            .into_iter()
            .map(FaultRule::validate)
            .collect::<Result<_, _>>()?;
        Ok(self)
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }

    /// Draws the fault for this request, if any: the first matching rule of the wanted sort
    /// (`body` or not) that fires. Rules with `times` count down.
    pub fn draw(&mut self, route: &str, body: bool) -> Option<FaultKind> {
        let rule = self.rules.iter_mut().find(|r| {
            r.matches(route) && r.parsed.is_some_and(|k| k.is_body() == body) && r.times != Some(0)
        })?;
        if rule.share < 1.0 && rand::random::<f64>() >= rule.share {
            return None;
        }
        if let Some(t) = rule.times.as_mut() {
            *t -= 1;
        }
        rule.parsed
    }
}

/// Calls per route and account (`-` when no account could be told).
#[derive(Debug, Default, Clone, Serialize)]
pub struct RequestLog {
    pub total: u64,
    pub routes: BTreeMap<String, RouteCount>,
    /// API calls being answered now, and the most at once (longpolls aside: they wait).
    pub in_flight: u64,
    pub peak_in_flight: u64,
    /// Bytes of file bodies (downloads, links, thumbnails) answered, by their length.
    pub body_bytes: u64,
    /// 429s answered, and calls for an account that arrived while a 429 had told it to wait
    /// (more than `EARLY_GRACE` after the 429, before its Retry-After was over): what Dropbox
    /// would count against the app.
    pub rate_limited: u64,
    pub early: u64,
    /// The early calls by route and account (`route account`).
    pub early_calls: BTreeMap<String, u64>,
    /// Per account: when the last 429 was answered, and until when it said to wait.
    #[serde(skip)]
    pub waits: BTreeMap<String, (std::time::Instant, std::time::Instant)>,
}

/// Calls already on their way when a 429 was answered are not early: they arrive within this.
pub const EARLY_GRACE: Duration = Duration::from_millis(100);

#[derive(Debug, Default, Clone, Serialize)]
pub struct RouteCount {
    pub total: u64,
    pub accounts: BTreeMap<String, u64>,
}

impl RequestLog {
    pub fn record(&mut self, route: &str, account: &str) {
        self.record_at(route, account, std::time::Instant::now());
    }

    fn record_at(&mut self, route: &str, account: &str, now: std::time::Instant) {
        if let Some((told, until)) = self.waits.get(account)
            && now > *told + EARLY_GRACE
            && now < *until
        {
            self.early += 1;
            *self
                .early_calls
                .entry(format!("{route} {account}"))
                .or_default() += 1;
        }
        self.total += 1;
        let r = self.routes.entry(route.to_owned()).or_default();
        r.total += 1;
        *r.accounts.entry(account.to_owned()).or_default() += 1;
    }

    /// A 429 told `account` to wait `secs`.
    pub fn told_to_wait(&mut self, account: &str, secs: u64) {
        self.told_to_wait_at(account, secs, std::time::Instant::now());
    }

    fn told_to_wait_at(&mut self, account: &str, secs: u64, now: std::time::Instant) {
        self.rate_limited += 1;
        self.waits
            .insert(account.to_owned(), (now, now + Duration::from_secs(secs)));
    }

    pub fn enter(&mut self) {
        self.in_flight += 1;
        self.peak_in_flight = self.peak_in_flight.max(self.in_flight);
    }

    pub fn leave(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    pub fn count(&self, route: &str) -> u64 {
        self.routes.get(route).map_or(0, |r| r.total)
    }

    pub fn count_for(&self, route: &str, account_id: &str) -> u64 {
        self.routes
            .get(route)
            .and_then(|r| r.accounts.get(account_id))
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn calls_made_while_a_429_says_wait_are_counted_early() {
        let mut log = RequestLog::default();
        let t = std::time::Instant::now();
        log.told_to_wait_at("acct", 5, t);
        // On their way when the 429 was answered: not early. Another account: not early.
        log.record_at("files/download", "acct", t + EARLY_GRACE / 2);
        log.record_at("files/download", "other", t + Duration::from_secs(1));
        assert_eq!(log.early, 0);
        // After the grace, before the wait is over: early. After it: fine again.
        log.record_at("files/get_metadata", "acct", t + Duration::from_secs(1));
        log.record_at("files/get_metadata", "acct", t + Duration::from_secs(6));
        assert_eq!((log.rate_limited, log.early), (1, 1));
        assert_eq!(log.early_calls["files/get_metadata acct"], 1);
    }

    use super::*;

    #[test]
    fn kinds_parse() {
        let cases = [
            ("429", Some(FaultKind::RateLimit { retry_after: 1 })),
            ("429:7", Some(FaultKind::RateLimit { retry_after: 7 })),
            ("503", Some(FaultKind::Status(503))),
            ("slow:100", Some(FaultKind::Slow { bytes_per_sec: 100 })),
            ("stall:0", Some(FaultKind::Stall { after: 0 })),
            ("cut:10", Some(FaultKind::Cut { after: 10 })),
            ("cut", None),
            ("200", None),
            ("boom", None),
        ];
        for (s, want) in cases {
            assert_eq!(s.parse::<FaultKind>().ok(), want, "{s}");
        }
    }

    #[test]
    fn rules_match_count_down_and_separate_body_faults() {
        let mut f = Faults {
            rules: vec![
                "files/*=503,times=1".parse().unwrap(),
                "files/download=cut:5".parse().unwrap(),
            ],
            ..Faults::default()
        };
        assert_eq!(f.draw("users/get_current_account", false), None);
        assert_eq!(
            f.draw("files/download", false),
            Some(FaultKind::Status(503))
        );
        assert_eq!(f.draw("files/download", false), None, "times=1 is spent");
        assert_eq!(
            f.draw("files/download", true),
            Some(FaultKind::Cut { after: 5 })
        );
        assert!("x".parse::<FaultRule>().is_err());
        assert!("*=503,share=2".parse::<FaultRule>().is_err());
        let never: FaultRule = "*=500,share=0".parse().unwrap();
        let mut f = Faults {
            rules: vec![never],
            ..Faults::default()
        };
        assert!((0..50).all(|_| f.draw("files/download", false).is_none()));
    }
}
