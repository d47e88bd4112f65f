//! The proxy's Dropbox client against the emulator: error mapping, Dropbox-API-Arg escaping,
//! streaming downloads, retries (5xx backoff, 429 Retry-After within a budget), one token
//! refresh on expiry, and timeouts on connect and on each read.

mod common;

use common::{APP_KEY, APP_SECRET, Harness, TOKEN, faults, within};
use dropcache::emulator::faults::Faults;
use dropcache::secret::Secret;
use dropcache::upstream::client::{Dropbox, Endpoints, RefreshGrant, TokenSet};
use dropcache::upstream::error::UpstreamError;
use dropcache::upstream::retry::RetryPolicy;
use dropcache::upstream::transport::http_client;
use dropcache::upstream::types::Metadata;
use http_body_util::BodyExt;
use hyper::StatusCode;
use std::time::{Duration, Instant};

fn client(h: &Harness, read_timeout: Duration) -> Dropbox {
    let policy = RetryPolicy {
        max_retries: 3,
        base: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        rate_limit_budget: Duration::from_secs(2),
    };
    Dropbox::new(
        http_client(Duration::from_secs(2), None).unwrap(),
        Endpoints::single(&h.running.base_url),
        policy,
        read_timeout,
    )
}

fn fixed() -> TokenSet {
    TokenSet::new(Some(Secret::new(TOKEN.to_owned())), None)
}

#[tokio::test]
async fn metadata_listing_and_errors_map_to_types() {
    let h = Harness::start().await;
    h.put("/Café/Ünïcode 😀.txt", "u").await;
    let db = client(&h, Duration::from_secs(5));
    let auth = fixed();
    let m = db
        .get_metadata(&auth, "/café/ünïcode 😀.txt")
        .await
        .unwrap();
    let Metadata::File(f) = m else {
        panic!("{m:?}")
    };
    assert_eq!(f.path_display.as_deref(), Some("/Café/Ünïcode 😀.txt"));
    assert!(matches!(
        db.get_metadata(&auth, "/missing").await,
        Err(UpstreamError::NotFound)
    ));
    assert!(matches!(
        db.list_folder(&auth, "/Café/Ünïcode 😀.txt", false).await,
        Err(UpstreamError::NotFolder)
    ));
    let listing = db.list_folder(&auth, "", true).await.unwrap();
    assert_eq!(listing.entries.len(), 2);
    h.put("/new.txt", "n").await;
    let delta = db
        .list_folder_continue(&auth, &listing.cursor)
        .await
        .unwrap();
    assert_eq!(delta.entries.len(), 1);
    h.emu().reset_cursors();
    assert!(matches!(
        db.list_folder_continue(&auth, &listing.cursor).await,
        Err(UpstreamError::Reset)
    ));
    let bad = TokenSet::new(Some(Secret::new("nope".into())), None);
    match db.get_metadata(&bad, "/new.txt").await {
        Err(UpstreamError::Auth { tag }) => assert_eq!(tag, "invalid_access_token"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn downloads_stream_with_ranges_and_unicode_args() {
    let h = Harness::start().await;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    h.put("/Fotos/naïve.bin", data.clone()).await;
    let db = client(&h, Duration::from_secs(5));
    let dl = db
        .download(&fixed(), "/fotos/NAÏVE.bin", None)
        .await
        .unwrap();
    assert_eq!(dl.status, StatusCode::OK);
    assert_eq!(dl.metadata.size, 100_000);
    assert_eq!(dl.content_length, Some(100_000));
    let body = within("download body", dl.body.collect())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], &data[..]);
    let part = db
        .download(&fixed(), "/fotos/naïve.bin", Some("bytes=10-19"))
        .await
        .unwrap();
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.content_range.as_deref(), Some("bytes 10-19/100000"));
    assert_eq!(
        &part.body.collect().await.unwrap().to_bytes()[..],
        &data[10..20]
    );
    assert!(matches!(
        db.download(&fixed(), "/Fotos", None).await,
        Err(UpstreamError::NotFile)
    ));
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_then_given_up() {
    let h = Harness::start().await;
    h.put("/x", "x").await;
    let db = client(&h, Duration::from_secs(5));
    h.emu()
        .set_faults(faults(&["files/get_metadata=503,times=2"]));
    h.emu().reset_log();
    db.get_metadata(&fixed(), "/x")
        .await
        .expect("third try succeeds");
    assert_eq!(h.emu().calls("files/get_metadata"), 3);
    h.emu().set_faults(faults(&["files/get_metadata=500"]));
    h.emu().reset_log();
    let err = db.get_metadata(&fixed(), "/x").await.unwrap_err();
    assert!(
        matches!(err, UpstreamError::Server { status: 500 }),
        "{err:?}"
    );
    assert_eq!(
        h.emu().calls("files/get_metadata"),
        4,
        "one try and max_retries=3 retries"
    );
    // Route errors are never retried.
    h.emu().set_faults(Faults::default());
    h.emu().reset_log();
    assert!(db.get_metadata(&fixed(), "/none").await.is_err());
    assert_eq!(h.emu().calls("files/get_metadata"), 1);
}

#[tokio::test]
async fn rate_limits_wait_within_the_budget_then_give_up() {
    let h = Harness::start().await;
    h.put("/x", "x").await;
    let db = client(&h, Duration::from_secs(5));
    h.emu()
        .set_faults(faults(&["files/get_metadata=429:1,times=1"]));
    let t = Instant::now();
    db.get_metadata(&fixed(), "/x")
        .await
        .expect("after Retry-After");
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        t.elapsed()
    );
    // Retry-After beyond the 2 s budget: no wait, the error says how long.
    h.emu().set_faults(faults(&["files/get_metadata=429:30"]));
    h.emu().reset_log();
    let t = Instant::now();
    let err = db.get_metadata(&fixed(), "/x").await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(h.emu().calls("files/get_metadata"), 1);
}

#[tokio::test]
async fn expired_tokens_are_refreshed_once() {
    let h = Harness::start().await;
    h.put("/x", "x").await;
    let db = client(&h, Duration::from_secs(5));
    let (access, refresh) = h.oauth_tokens().await;
    let grant = RefreshGrant {
        refresh_token: Secret::new(refresh),
        app_key: APP_KEY.into(),
        app_secret: Some(Secret::new(APP_SECRET.into())),
    };
    let auth = TokenSet::new(Some(Secret::new(access)), Some(grant.clone()));
    db.get_metadata(&auth, "/x").await.unwrap();
    h.emu().expire_tokens(None);
    h.emu().reset_log();
    db.get_metadata(&auth, "/x")
        .await
        .expect("refreshed and retried");
    assert_eq!(h.emu().calls("oauth2/token"), 1);
    assert_eq!(h.emu().calls("files/get_metadata"), 2);
    // A refresh grant alone: refresh first.
    let only_refresh = TokenSet::new(None, Some(grant.clone()));
    db.get_metadata(&only_refresh, "/x").await.unwrap();
    // A revoked grant: a clear error that names no secret.
    let bad = TokenSet::new(
        None,
        Some(RefreshGrant {
            refresh_token: Secret::new("revoked-or-wrong".into()),
            ..grant
        }),
    );
    let err = db.get_metadata(&bad, "/x").await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("invalid_grant"), "{text}");
    assert!(!text.contains("revoked-or-wrong"), "secret leaked: {text}");
    assert!(bad.needs_relink());
    // Marked: later calls fail at once, without asking the token endpoint again.
    let asked = h.emu().calls("oauth2/token");
    db.get_metadata(&bad, "/x").await.unwrap_err();
    assert_eq!(h.emu().calls("oauth2/token"), asked);
}

#[tokio::test]
async fn timeouts_on_answers_and_on_each_read() {
    let h = Harness::start().await;
    h.put("/big", vec![1u8; 10_000]).await;
    let db = client(&h, Duration::from_millis(300));
    // A stalled body times out on the read, not never.
    h.emu().set_faults(faults(&["files/download=stall:100"]));
    let dl = db.download(&fixed(), "/big", None).await.unwrap();
    let err = within("stalled body", dl.body.collect()).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Timeout(_)), "{err:?}");
    // An answer slower than the read timeout: Timeout after the retries, a 504-class error.
    h.emu().set_faults(Faults {
        latency_ms: 1000,
        ..Faults::default()
    });
    let err = within("slow answer", db.get_metadata(&fixed(), "/big"))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    // Nothing listening: a connect error, also a timeout-class error.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let nowhere = Dropbox::new(
        http_client(Duration::from_millis(300), None).unwrap(),
        Endpoints::single(&format!("http://{addr}")),
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        },
        Duration::from_millis(300),
    );
    let err = nowhere.get_metadata(&fixed(), "/x").await.unwrap_err();
    assert!(
        matches!(err, UpstreamError::Transport(_)) && err.is_timeout(),
        "{err:?}"
    );
}
