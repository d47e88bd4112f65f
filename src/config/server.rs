//! `[server]` and `[metrics]`: where the proxy listens, how it meets its clients (trusted
//! proxies, timeouts, connection caps), and where `/metrics` is served.

use super::raw::{RawMetrics, RawServer};
use super::units::duration;
use super::{ConfigError, invalid};
use ipnet::IpNet;
use std::net::SocketAddr;
use std::time::Duration;

/// How the proxy meets its clients and its operators.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Peers whose `X-Forwarded-For` is believed (nginx in front); the client address is the
    /// first address in it, from the right, that is not one of these.
    pub trusted_proxies: Vec<IpNet>,
    /// How long in-flight requests get to finish after SIGTERM.
    pub shutdown_timeout: Duration,
    /// `/readyz` answers 503 while the store is unreachable (default: 200, "degraded", since
    /// requests are still served from memory and disk).
    pub ready_requires_store: bool,
    /// A request's head must be in within this of its first byte (a new connection's first
    /// request: of the connection opening).
    pub header_read_timeout: Duration,
    /// A connection with no request under way and nothing moving is closed after this.
    pub keepalive_timeout: Duration,
    /// A request body we read (the webhook's) must be in within this.
    pub body_read_timeout: Duration,
    /// Most client connections open at once; past it new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Most concurrent HTTP/2 streams per connection.
    pub http2_max_streams: u32,
    /// HTTP/2 pings on a connection this often (a peer that does not answer is dropped).
    pub http2_keepalive_interval: Duration,
}

/// An IP address (a one-address network) or a CIDR network.
fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// `server.listen` and the rest of `[server]`.
pub(super) fn server(raw: RawServer) -> Result<(SocketAddr, ServerConfig), ConfigError> {
    let listen_text = raw.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        invalid(
            "server.listen",
            format!("{listen_text:?} is not an IP:PORT address"),
        )
    })?;
    let server = ServerConfig {
        trusted_proxies: raw
            .trusted_proxies
            .unwrap_or_else(|| vec!["127.0.0.1/32".into(), "::1/128".into()])
            .iter()
            .map(|p| parse_net(p))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                invalid(
                    "server.trusted_proxies",
                    "each entry must be an IP address or a CIDR network like \"10.0.0.0/8\"",
                )
            })?,
        shutdown_timeout: duration("server.shutdown_timeout", raw.shutdown_timeout, "20s")?,
        ready_requires_store: raw.ready_requires_store.unwrap_or(false),
        header_read_timeout: duration(
            "server.header_read_timeout",
            raw.header_read_timeout,
            "10s",
        )?,
        keepalive_timeout: duration("server.keepalive_timeout", raw.keepalive_timeout, "75s")?,
        body_read_timeout: duration("server.body_read_timeout", raw.body_read_timeout, "10s")?,
        max_connections: raw.max_connections.unwrap_or(4096),
        http2_max_streams: raw.http2_max_streams.unwrap_or(128),
        http2_keepalive_interval: duration(
            "server.http2_keepalive_interval",
            raw.http2_keepalive_interval,
            "30s",
        )?,
    };
    for (key, d) in [
        ("server.header_read_timeout", server.header_read_timeout),
        ("server.keepalive_timeout", server.keepalive_timeout),
        ("server.body_read_timeout", server.body_read_timeout),
        (
            "server.http2_keepalive_interval",
            server.http2_keepalive_interval,
        ),
    ] {
        if d.is_zero() {
            return Err(invalid(key, "must be above zero"));
        }
    }
    if server.max_connections == 0 {
        return Err(invalid("server.max_connections", "must be at least 1"));
    }
    if server.http2_max_streams == 0 {
        return Err(invalid("server.http2_max_streams", "must be at least 1"));
    }
    Ok((listen, server))
}

/// `metrics.listen`: None serves `/metrics` on `server.listen`.
pub(super) fn metrics_listen(
    raw: RawMetrics,
    listen: SocketAddr,
) -> Result<Option<SocketAddr>, ConfigError> {
    let metrics_listen = match raw.listen.filter(|l| !l.is_empty()) {
        None => None,
        Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
            invalid(
                "metrics.listen",
                format!("{text:?} is not an IP:PORT address"),
            )
        })?),
    };
    if metrics_listen == Some(listen) && listen.port() != 0 {
        return Err(invalid(
            "metrics.listen",
            "must differ from server.listen (leave it unset to serve /metrics there)",
        ));
    }
    Ok(metrics_listen)
}
