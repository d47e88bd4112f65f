//! Which credentials each route accepts, every error shape Dropbox uses, OAuth 2 (code with
//! secret or PKCE, refresh, revoke, forced expiry) and shared links under app auth.

mod common;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{APP_KEY, APP_SECRET, Harness, TOKEN};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn basic() -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{APP_KEY}:{APP_SECRET}"))
    )
}

/// An RPC call with an arbitrary Authorization value.
async fn rpc_as(h: &Harness, route: &str, auth: Option<&str>, arg: &str) -> common::Answer {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = auth {
        headers.push(("Authorization", a));
    }
    h.send(h.request(
        Method::POST,
        &format!("/2/{route}"),
        &headers,
        arg.to_owned(),
    ))
    .await
}

#[tokio::test]
async fn each_route_accepts_the_auth_dropbox_accepts() {
    let h = Harness::start().await;
    h.put("/f.txt", "x").await;
    let link = h
        .call(
            "sharing/create_shared_link_with_settings",
            json!({"path": "/f.txt"}),
        )
        .await
        .ok()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let bearer = format!("Bearer {TOKEN}");
    let basic = basic();
    // (route, arg, bearer ok, basic ok)
    let cases: Vec<(&str, Value, bool, bool)> = vec![
        ("files/list_folder", json!({"path": ""}), true, false),
        (
            "files/list_folder",
            json!({"path": "", "shared_link": {"url": "x"}}),
            false,
            false,
        ),
        (
            "files/list_folder/get_latest_cursor",
            json!({"path": ""}),
            true,
            false,
        ),
        ("files/get_metadata", json!({"path": "/f.txt"}), true, false),
        (
            "files/get_temporary_link",
            json!({"path": "/f.txt"}),
            true,
            false,
        ),
        (
            "sharing/get_shared_link_metadata",
            json!({"url": link}),
            true,
            true,
        ),
        ("sharing/list_shared_links", json!({}), true, false),
        ("check/user", json!({"query": "q"}), true, false),
        ("check/app", json!({"query": "q"}), false, true),
        ("users/get_current_account", Value::Null, true, false),
    ];
    for (route, arg, bearer_ok, basic_ok) in cases {
        let body = arg.to_string();
        let with_bearer = rpc_as(&h, route, Some(&bearer), &body).await;
        let with_basic = rpc_as(&h, route, Some(&basic), &body).await;
        let none = rpc_as(&h, route, None, &body).await;
        assert_eq!(
            with_bearer.status == StatusCode::OK,
            bearer_ok,
            "{route} bearer: {}",
            with_bearer.text()
        );
        assert_eq!(
            with_basic.status == StatusCode::OK,
            basic_ok,
            "{route} basic: {}",
            with_basic.text()
        );
        assert_eq!(none.status, StatusCode::BAD_REQUEST, "{route} without auth");
        assert!(
            none.text()
                .contains("Must provide HTTP header \"Authorization\""),
            "{}",
            none.text()
        );
    }
    // Content routes: download is user-only; get_shared_link_file takes the app.
    let arg = format!(r#"{{"url": "{link}"}}"#);
    for (auth, want) in [
        (bearer.as_str(), StatusCode::OK),
        (basic.as_str(), StatusCode::OK),
    ] {
        let a = h
            .send(h.request(
                Method::POST,
                "/2/sharing/get_shared_link_file",
                &[("Authorization", auth), ("Dropbox-API-Arg", &arg)],
                "",
            ))
            .await;
        assert_eq!(a.status, want, "{auth}: {}", a.text());
        assert_eq!(
            a.result()[".tag"],
            "file",
            "SharedLinkMetadata keeps its .tag"
        );
    }
    let dl = h
        .send(h.request(
            Method::POST,
            "/2/files/download",
            &[
                ("Authorization", &basic),
                ("Dropbox-API-Arg", r#"{"path": "/f.txt"}"#),
            ],
            "",
        ))
        .await;
    assert_eq!(dl.status, StatusCode::BAD_REQUEST);
    assert!(
        dl.text()
            .contains("Expecting \"Bearer <oauth2-access-token>\""),
        "{}",
        dl.text()
    );
    // A wrong app secret is a 401.
    let wrong = format!("Basic {}", STANDARD.encode(format!("{APP_KEY}:nope")));
    let a = rpc_as(&h, "check/app", Some(&wrong), "{}").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn error_shapes_are_dropbox_exact() {
    let h = Harness::start().await;
    // 400: plain text naming the route.
    let cases = [
        (
            Some("Bearer"),
            "{}",
            "Invalid authorization value in HTTP header \"Authorization\": \"Bearer\". Expecting \"Bearer <oauth2-access-token>\".",
        ),
        (
            Some("Bearer x"),
            "{not json",
            "request body: could not decode input as JSON",
        ),
        (
            Some("Bearer x"),
            r#"{"path": "/"}"#,
            "path: Specify the root folder as an empty string rather than as \"/\".",
        ),
        (
            Some("Bearer x"),
            r#"{"path": "nope"}"#,
            "path: 'nope' did not match pattern",
        ),
        (Some("Bearer x"), r#"{"path": 5}"#, "path: expected string"),
    ];
    let bearer = format!("Bearer {TOKEN}");
    for (auth, body, want) in cases {
        let auth = if auth == Some("Bearer x") {
            Some(bearer.as_str())
        } else {
            auth
        };
        let a = rpc_as(&h, "files/list_folder", auth, body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(a.header("content-type").unwrap().starts_with("text/plain"));
        let text = a.text();
        assert!(
            text.starts_with("Error in call to API function \"files/list_folder\": "),
            "{text}"
        );
        assert!(text.contains(want), "{text} should contain {want}");
    }
    // Wrong RPC content type.
    let a = h
        .send(h.request(
            Method::POST,
            "/2/files/list_folder",
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            "{}",
        ))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.text().contains("Bad HTTP \"Content-Type\" header: \"application/x-www-form-urlencoded\".  Expecting one of"), "{}", a.text());
    // A Content-Type on a download is refused.
    let a = h
        .send(h.request(
            Method::POST,
            "/2/files/download",
            &[
                ("Authorization", &bearer),
                ("Dropbox-API-Arg", r#"{"path": "/x"}"#),
                ("Content-Type", "application/json"),
            ],
            "",
        ))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // 401: JSON with exactly application/json.
    for (token, tag) in [("unknown", "invalid_access_token")] {
        let a = h
            .rpc("users/get_current_account", Some(token), &Value::Null)
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(a.header("content-type"), Some("application/json"));
        assert!(a.header("www-authenticate").is_none());
        let v = a.json();
        assert_eq!(v["error"], json!({".tag": tag}));
        assert!(
            v["error_summary"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{tag}/"))
        );
    }
    h.emu().expire_tokens(Some(TOKEN));
    let a = h
        .rpc("users/get_current_account", Some(TOKEN), &Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.json()["error"][".tag"], "expired_access_token");
    // 404 for unknown routes; 405 for GET on an RPC route.
    let a = h
        .send(h.request(Method::POST, "/2/files/nonsense", &[], ""))
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = h
        .send(h.request(Method::GET, "/2/files/list_folder", &[], ""))
        .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn void_routes_take_no_body_or_null_and_answer_null() {
    let h = Harness::start().await;
    let bearer = format!("Bearer {TOKEN}");
    // curl style: no body, no Content-Type.
    let a = h
        .send(h.request(
            Method::POST,
            "/2/users/get_current_account",
            &[("Authorization", &bearer)],
            "",
        ))
        .await;
    let acct = a.ok();
    assert_eq!(acct["account_id"].as_str().unwrap().len(), 40);
    assert_eq!(acct["name"]["display_name"], "Test User");
    assert_eq!(acct["root_info"][".tag"], "user");
    // SDK style: body `null`.
    let a = h
        .rpc("users/get_current_account", Some(TOKEN), &Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    // A value where Void is expected is a 400.
    let a = rpc_as(&h, "users/get_current_account", Some(&bearer), "{}").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // revoke answers `null` and kills the token.
    let a = h.rpc("auth/token/revoke", Some(TOKEN), &Value::Null).await;
    assert_eq!((a.status, a.text().as_str()), (StatusCode::OK, "null"));
    let a = h
        .rpc("users/get_current_account", Some(TOKEN), &Value::Null)
        .await;
    assert_eq!(a.json()["error"][".tag"], "invalid_access_token");
}

/// Runs `/oauth2/authorize` with the given extra query and returns the redirect's parameters.
async fn authorize(h: &Harness, extra: &str) -> Vec<(String, String)> {
    let a = h
        .send(h.request(
            Method::GET,
            &format!("/oauth2/authorize?client_id={APP_KEY}&response_type=code&redirect_uri=http://localhost/cb&state=s1{extra}"),
            &[],
            "",
        ))
        .await;
    assert_eq!(a.status, StatusCode::FOUND, "{}", a.text());
    let location = a.header("location").unwrap();
    assert!(location.starts_with("http://localhost/cb?"), "{location}");
    form_urlencoded::parse(location.split_once('?').unwrap().1.as_bytes())
        .into_owned()
        .collect()
}

fn param<'a>(params: &'a [(String, String)], k: &str) -> &'a str {
    params
        .iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {k}"))
}

async fn token(h: &Harness, form: &[(&str, &str)], auth: Option<&str>) -> common::Answer {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(a) = auth {
        headers.push(("Authorization", a));
    }
    h.send(h.request(Method::POST, "/oauth2/token", &headers, body))
        .await
}

#[tokio::test]
async fn oauth_code_with_secret_then_refresh_and_revoke() {
    let mut config = common::config();
    config.token_lifetime = std::time::Duration::from_secs(60);
    let h = Harness::with(config).await;
    let params = authorize(&h, "&token_access_type=offline").await;
    assert_eq!(param(&params, "state"), "s1");
    let code = param(&params, "code").to_owned();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", "http://localhost/cb"),
    ];
    let a = token(&h, &form, Some(&basic())).await;
    assert_eq!(a.header("content-type"), Some("application/json"));
    let t = a.ok();
    assert_eq!(t["token_type"], "bearer");
    assert_eq!(t["expires_in"], 60);
    assert!(
        t["uid"].is_string(),
        "the Python SDK reads uid unconditionally"
    );
    assert_eq!(t["account_id"].as_str().unwrap().len(), 40);
    let access = t["access_token"].as_str().unwrap().to_owned();
    let refresh = t["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        h.rpc("users/get_current_account", Some(&access), &Value::Null)
            .await
            .status,
        StatusCode::OK
    );
    // Codes are single-use.
    let again = token(&h, &form, Some(&basic())).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(again.json()["error"], "invalid_grant");
    // Forced expiry, then refresh (client credentials as form fields this time).
    assert_eq!(h.emu().expire_tokens(None), 1);
    let expired = h
        .rpc("users/get_current_account", Some(&access), &Value::Null)
        .await;
    assert_eq!(expired.json()["error"][".tag"], "expired_access_token");
    let r = token(
        &h,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", APP_KEY),
            ("client_secret", APP_SECRET),
        ],
        None,
    )
    .await
    .ok();
    assert!(
        r.get("refresh_token").is_none(),
        "refresh tokens are not rotated"
    );
    let fresh = r["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        h.rpc("users/get_current_account", Some(&fresh), &Value::Null)
            .await
            .status,
        StatusCode::OK
    );
    // Without the secret a non-PKCE refresh is refused; a wrong one too.
    let no_secret = token(
        &h,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", APP_KEY),
        ],
        None,
    )
    .await;
    assert_eq!(no_secret.status, StatusCode::BAD_REQUEST);
    // Revoke kills the refresh family.
    h.rpc("auth/token/revoke", Some(&fresh), &Value::Null)
        .await
        .ok();
    let dead = token(
        &h,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        Some(&basic()),
    )
    .await;
    assert_eq!(
        dead.json(),
        json!({"error": "invalid_grant", "error_description": "refresh token is invalid or revoked"})
    );
    let bad_grant = token(&h, &[("grant_type", "password")], Some(&basic())).await;
    assert_eq!(bad_grant.json()["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn oauth_pkce_needs_the_right_verifier() {
    let h = Harness::start().await;
    let verifier = "a".repeat(64) + &"Z9".repeat(32);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let extra =
        format!("&token_access_type=offline&code_challenge={challenge}&code_challenge_method=S256");
    let code = param(&authorize(&h, &extra).await, "code").to_owned();
    let wrong = token(
        &h,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", APP_KEY),
            ("code_verifier", "wrong"),
            ("redirect_uri", "http://localhost/cb"),
        ],
        None,
    )
    .await;
    assert_eq!(wrong.json()["error"], "invalid_grant");
    let code = param(&authorize(&h, &extra).await, "code").to_owned();
    let t = token(
        &h,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", APP_KEY),
            ("code_verifier", &verifier),
            ("redirect_uri", "http://localhost/cb"),
        ],
        None,
    )
    .await
    .ok();
    // A PKCE refresh token refreshes without a secret.
    let rt = t["refresh_token"].as_str().unwrap();
    let r = token(
        &h,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", APP_KEY),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // Bad client id: error page, no redirect.
    let a = h
        .send(h.request(
            Method::GET,
            "/oauth2/authorize?client_id=nope&response_type=code",
            &[],
            "",
        ))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // Bad response_type: redirected with an error.
    let a = h
        .send(h.request(Method::GET, &format!("/oauth2/authorize?client_id={APP_KEY}&response_type=token&redirect_uri=http://localhost/cb"), &[], ""))
        .await;
    assert!(
        a.header("location")
            .unwrap()
            .contains("error=unsupported_response_type")
    );
}

#[tokio::test]
async fn shared_links_passwords_and_folder_listing_by_app() {
    let h = Harness::start().await;
    h.put("/Album/a.jpg", "a").await;
    h.put("/Album/sub/b.jpg", "b").await;
    let link = h
        .call(
            "sharing/create_shared_link_with_settings",
            json!({"path": "/Album", "settings": {"requested_visibility": "password", "link_password": "pw"}}),
        )
        .await
        .ok();
    assert_eq!(link[".tag"], "folder");
    let url = link["url"].as_str().unwrap();
    assert!(
        url.starts_with("https://www.dropbox.com/scl/fo/") && url.contains("rlkey="),
        "{url}"
    );
    assert_eq!(
        link["link_permissions"]["resolved_visibility"][".tag"],
        "password"
    );
    let exists = h
        .call(
            "sharing/create_shared_link_with_settings",
            json!({"path": "/album"}),
        )
        .await
        .route_error();
    assert_eq!(exists[".tag"], "shared_link_already_exists");
    assert_eq!(exists["shared_link_already_exists"]["metadata"]["url"], url);

    let b = basic();
    let as_app = |arg: Value| {
        let b = b.clone();
        let h = &h;
        async move { rpc_as(h, "files/list_folder", Some(&b), &arg.to_string()).await }
    };
    let denied = as_app(json!({"path": "", "shared_link": {"url": url}}))
        .await
        .route_error();
    assert_eq!(denied[".tag"], "shared_link_access_denied");
    let listed = as_app(json!({"path": "", "shared_link": {"url": url, "password": "pw"}}))
        .await
        .ok();
    let entries = listed["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert!(
        entries.iter().all(|e| e.get("path_lower").is_none()),
        "{entries:?}"
    );
    let sub = as_app(json!({"path": "/sub", "shared_link": {"url": url, "password": "pw"}}))
        .await
        .ok();
    assert_eq!(sub["entries"][0]["name"], "b.jpg");
    let rec = as_app(
        json!({"path": "", "recursive": true, "shared_link": {"url": url, "password": "pw"}}),
    )
    .await;
    assert_eq!(rec.status, StatusCode::BAD_REQUEST);
    // The link's cursor sees later changes under it, with app auth.
    h.put("/Album/c.jpg", "c").await;
    let cont = rpc_as(
        &h,
        "files/list_folder/continue",
        Some(&b),
        &json!({"cursor": listed["cursor"]}).to_string(),
    )
    .await
    .ok();
    assert_eq!(cont["entries"][0]["name"], "c.jpg");
    // Metadata of an item inside the link, as the app: no path_lower.
    let m = rpc_as(
        &h,
        "sharing/get_shared_link_metadata",
        Some(&b),
        &json!({"url": url, "path": "/sub/b.jpg", "link_password": "pw"}).to_string(),
    )
    .await
    .ok();
    assert_eq!(
        (m[".tag"].as_str(), m["size"].as_u64()),
        (Some("file"), Some(1))
    );
    assert!(m.get("path_lower").is_none());
    let unknown = rpc_as(
        &h,
        "sharing/get_shared_link_metadata",
        Some(&b),
        &json!({"url": "https://www.dropbox.com/scl/fi/nope/x?rlkey=y"}).to_string(),
    )
    .await;
    assert_eq!(unknown.route_error()[".tag"], "shared_link_not_found");
}
