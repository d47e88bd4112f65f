//! The Redis backend, over a reconnecting connection manager, with a breaker: after a failure
//! the store answers `Unavailable` at once for a moment instead of making every request wait on
//! a dead server; the next call after that tries again (the manager reconnects by itself).
//! Pub/sub runs on its own connection, re-subscribed by a task whenever it drops.
//!
//! A Redis Cluster works the same way through the crate's cluster connection, which follows
//! MOVED / ASK and re-reads the topology. Every script touches one key (so no hash tags are
//! needed: nothing is ever asked of two slots at once); SCAN visits each primary in turn; and
//! pub/sub listens on one node at a time, since a cluster passes every PUBLISH to all nodes.

use super::StoreError;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{AsyncCommands, Cmd, Pipeline, RedisFuture, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How long the breaker stays open after a failure.
const BREAK: Duration = Duration::from_secs(1);
/// Waits between pub/sub reconnection attempts, doubling up to the last.
const RESUBSCRIBE: [u64; 5] = [100, 200, 500, 1000, 2000];

/// Holds or renews a lease: set when absent, extended when ours; 1 if we hold it after.
const HOLD: &str = "local v = redis.call('get', KEYS[1]) \
    if v == false then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end \
    if v == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end \
    return 0";
/// Sets a metadata entry unless the stored one was confirmed later (its `checked_ms`).
const SET_IF_NEWER: &str = "local v = redis.call('get', KEYS[1]) \
    if v then local c = tonumber(string.match(v, '\"checked_ms\":(%d+)')) \
      if c and c > tonumber(ARGV[2]) then return 0 end end \
    redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[3]) return 1";
/// Gets a value and deletes it, atomically (GETDEL, for Redis before 6.2 too).
const TAKE: &str = "local v = redis.call('get', KEYS[1]) \
    if v then redis.call('del', KEYS[1]) end return v";
/// How often a quiet subscription is probed, and how long the probe may take.
const PROBE_EVERY: Duration = Duration::from_secs(5);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Deletes a lease only when ours.
const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
    return redis.call('del', KEYS[1]) end return 0";

#[derive(Clone)]
pub struct RedisStore {
    /// Where pub/sub connects: the server, or each node of a cluster in turn.
    subscribe_to: Arc<[redis::Client]>,
    conn: Conn,
    /// Unix ms until which calls fail fast.
    down_until: Arc<AtomicU64>,
}

use super::now_ms;

impl RedisStore {
    pub async fn connect(url: &str) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(StoreError::Redis)?;
        // Fail fast at start-up with a clear error; once connected, reconnect with backoff.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200))
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)));
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(StoreError::Redis)?;
        Ok(RedisStore {
            subscribe_to: Arc::new([client]),
            conn: Conn::Single(conn),
            down_until: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Connects to a Redis Cluster through its seed nodes (it learns the rest from them).
    pub async fn connect_cluster(nodes: &[&str]) -> Result<RedisStore, StoreError> {
        let clients = nodes
            .iter()
            .map(|n| redis::Client::open(*n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::Redis)?;
        let cluster = ClusterClientBuilder::new(nodes.to_vec())
            .retries(2)
            .min_retry_wait(50)
            .max_retry_wait(200)
            .connection_timeout(Duration::from_secs(1))
            .response_timeout(Duration::from_secs(1))
            .build()
            .map_err(StoreError::Redis)?;
        let conn = cluster
            .get_async_connection()
            .await
            .map_err(StoreError::Redis)?;
        Ok(RedisStore {
            subscribe_to: clients.into(),
            conn: Conn::Cluster(conn),
            down_until: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Runs a command unless the breaker is open; opens it on failure.
    async fn call<T>(
        &self,
        f: impl AsyncFnOnce(Conn) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        if now_ms() < self.down_until.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable);
        }
        let out = f(self.conn.clone()).await;
        match out {
            Ok(v) => Ok(v),
            Err(e) => {
                self.down_until
                    .store(now_ms() + BREAK.as_millis() as u64, Ordering::Relaxed);
                Err(StoreError::Redis(e))
            }
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        // A probe goes through even with the breaker open: it is how /readyz sees recovery.
        self.down_until.store(0, Ordering::Relaxed);
        self.call(async |mut c| redis::cmd("PING").query_async::<()>(&mut c).await)
            .await
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.call(async |mut c| c.get(key).await).await
    }

    pub async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.call(async |mut c| match ttl {
            Some(t) => c.pset_ex(key, value, t.as_millis().max(1) as u64).await,
            None => c.set(key, value).await,
        })
        .await
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.call(async |mut c| c.del(key).await).await
    }

    /// Gets and deletes `key` in one step: of two callers, one gets the value.
    pub async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.call(async |mut c| eval(TAKE, key).query_async(&mut c).await)
            .await
    }

    /// Every key starting with `prefix`, with its value (SCAN, so Redis is never blocked).
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.call(async |mut c| {
            let mut found = Vec::new();
            for route in c.primaries().await? {
                let mut scan = Scan::new(prefix, route);
                while let Some(keys) = scan.next(&mut c).await? {
                    for k in keys {
                        if let Some(v) = c.get::<_, Option<Vec<u8>>>(&k).await? {
                            found.push((k, v));
                        }
                    }
                }
            }
            Ok(found)
        })
        .await
    }

    /// Deletes every key under `base` that starts with one of `prefixes` (one SCAN pass,
    /// so Redis is never blocked).
    pub async fn delete_prefixes(&self, base: &str, prefixes: &[String]) -> Result<(), StoreError> {
        self.call(async |mut c| {
            for route in c.primaries().await? {
                let mut scan = Scan::new(base, route);
                while let Some(keys) = scan.next(&mut c).await? {
                    let doomed: Vec<String> = keys
                        .into_iter()
                        .filter(|k| prefixes.iter().any(|p| k.starts_with(p.as_str())))
                        .collect();
                    if !doomed.is_empty() {
                        // A cluster splits a many-key UNLINK by slot.
                        c.unlink::<_, ()>(doomed).await?;
                    }
                }
            }
            Ok(())
        })
        .await
    }

    /// Sets `value` unless the stored entry was confirmed after `checked_ms`; false if kept.
    pub async fn set_if_newer(
        &self,
        key: &str,
        value: &[u8],
        checked_ms: u64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.call(async |mut c| {
            eval(SET_IF_NEWER, key)
                .arg(value)
                .arg(checked_ms)
                .arg(ttl.as_millis().max(1) as u64)
                .query_async::<i64>(&mut c)
                .await
                .map(|set| set == 1)
        })
        .await
    }

    pub async fn hold_lease(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.call(async |mut c| {
            eval(HOLD, key)
                .arg(owner)
                .arg(ttl.as_millis().max(1) as u64)
                .query_async::<i64>(&mut c)
                .await
                .map(|held| held == 1)
        })
        .await
    }

    pub async fn release_lease(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        self.call(async |mut c| {
            eval(RELEASE, key)
                .arg(owner)
                .query_async::<i64>(&mut c)
                .await
                .map(drop)
        })
        .await
    }

    pub async fn publish(&self, channel: &str, message: &[u8]) -> Result<(), StoreError> {
        self.call(async |mut c| c.publish(channel, message).await)
            .await
    }

    /// Follows `channel` for as long as `tx` is open, reconnecting when the connection
    /// drops; `healthy` says whether the subscription is live now (messages may be missed
    /// while it is not).
    pub async fn follow(
        self,
        channel: String,
        tx: mpsc::UnboundedSender<Vec<u8>>,
        healthy: watch::Sender<bool>,
    ) {
        use futures_util::StreamExt;
        let mut failures = 0usize;
        let mut attempts = 0usize;
        while !tx.is_closed() {
            // A cluster node that is down is passed over for the next one.
            let client = &self.subscribe_to[attempts % self.subscribe_to.len()];
            attempts += 1;
            let subscribed = async {
                let mut pubsub =
                    tokio::time::timeout(Duration::from_secs(2), client.get_async_pubsub())
                        .await
                        .map_err(|_| "timed out connecting".to_string())?
                        .map_err(|e| e.to_string())?;
                pubsub
                    .subscribe(&channel)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(pubsub)
            };
            match subscribed.await {
                Ok(pubsub) => {
                    failures = 0;
                    healthy.send_replace(true);
                    tracing::info!("subscribed to store invalidations");
                    let (mut sink, mut messages) = pubsub.split();
                    let mut probe = tokio::time::interval(PROBE_EVERY);
                    probe.tick().await;
                    // A half-open connection delivers nothing and says nothing: probe it.
                    loop {
                        tokio::select! {
                            msg = messages.next() => match msg {
                                Some(msg) => {
                                    if tx.send(msg.get_payload_bytes().to_vec()).is_err() {
                                        return;
                                    }
                                }
                                None => break,
                            },
                            _ = probe.tick() => {
                                // Any answer will do: subscribed, Redis answers `["pong", ""]`, not `PONG`.
                                let pong = tokio::time::timeout(PROBE_TIMEOUT, sink.ping::<redis::Value>());
                                if !matches!(pong.await, Ok(Ok(_))) {
                                    break;
                                }
                            }
                        }
                    }
                    healthy.send_replace(false);
                    tracing::warn!("lost the store's invalidation channel; reconnecting");
                }
                Err(e) => {
                    healthy.send_replace(false);
                    if failures == 0 {
                        tracing::warn!(error = %e, "cannot subscribe to store invalidations");
                    }
                    failures += 1;
                }
            }
            let wait = RESUBSCRIBE[failures.min(RESUBSCRIBE.len() - 1)];
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
}

/// The connection: one server (reconnecting by itself) or a cluster.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl Conn {
    /// Where a SCAN must go to see every key: the server (None), or, in a cluster, one route
    /// per primary (by the first slot of one of its ranges).
    async fn primaries(&mut self) -> redis::RedisResult<Vec<Option<Route>>> {
        let Conn::Cluster(c) = self else {
            return Ok(vec![None]);
        };
        let slots: Vec<Value> = redis::cmd("CLUSTER").arg("SLOTS").query_async(c).await?;
        let mut seen = std::collections::HashSet::new();
        let mut routes = Vec::new();
        for range in slots {
            let Value::Array(fields) = range else {
                continue;
            };
            let (Some(Value::Int(start)), Some(Value::Array(primary))) =
                (fields.first(), fields.get(2))
            else {
                continue;
            };
            // A primary is named by host and port (its id is not sent by every version).
            let name = format!("{:?}{:?}", primary.first(), primary.get(1));
            if seen.insert(name) {
                routes.push(Some(Route::new(*start as u16, SlotAddr::Master)));
            }
        }
        Ok(routes)
    }
}

/// One SCAN pass over the keys starting with a prefix, on one server, a batch at a time.
struct Scan {
    pattern: String,
    /// The cluster primary scanned (None: the only server).
    route: Option<Route>,
    /// None once Redis said the pass is over.
    cursor: Option<u64>,
}

impl Scan {
    fn new(prefix: &str, route: Option<Route>) -> Scan {
        Scan {
            pattern: format!("{}*", glob_escape(prefix)),
            route,
            cursor: Some(0),
        }
    }

    /// The next batch (possibly empty), or None when the pass is done.
    async fn next(&mut self, c: &mut Conn) -> redis::RedisResult<Option<Vec<String>>> {
        let Some(cursor) = self.cursor else {
            return Ok(None);
        };
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(&self.pattern)
            .arg("COUNT")
            .arg(1000);
        let (next, keys): (u64, Vec<String>) = match (&self.route, c) {
            (Some(route), Conn::Cluster(cluster)) => {
                let to = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(*route));
                redis::from_redis_value(cluster.route_command(cmd, to).await?)?
            }
            (_, c) => cmd.query_async(c).await?,
        };
        self.cursor = (next != 0).then_some(next);
        Ok(Some(keys))
    }
}

/// `EVAL script 1 key`, for the caller to add the script's arguments.
fn eval(script: &str, key: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(1).arg(key);
    cmd
}

/// Escapes Redis glob characters so a key prefix matches only itself.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(super::glob_escape("a*b?[c]\\d"), "a\\*b\\?\\[c\\]\\\\d");
        assert_eq!(super::glob_escape("/plain/path"), "/plain/path");
    }
}
