//! OAuth 2 (reference §5): `/oauth2/authorize` auto-approves for the signed-in account (the
//! default one unless `Emulator::sign_in` or `/_emulator/sign_in` chose another),
//! `/oauth2/token` exchanges codes (client secret or PKCE) and refresh tokens; plus
//! `auth/token/revoke` and `users/get_current_account`.

use super::files::user;
use super::state::{CodeGrant, RefreshGrant, secret};
use super::wire::{ApiError, Credentials, JSON, parse_authorization};
use super::{Call, Emulator, Reply};
use crate::http::{Body, empty, full};
use crate::upstream::json::to_header_safe;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

/// Codes are single-use and short-lived.
const CODE_LIFE: Duration = Duration::from_secs(600);
/// The scopes a token gets when the app asks for none.
const DEFAULT_SCOPE: &str = "account_info.read files.content.read files.content.write files.metadata.read sharing.read sharing.write";

fn query(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn page(status: StatusCode, text: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html><title>Dropbox emulator</title><p>{}</p>",
        text.replace('&', "&amp;").replace('<', "&lt;")
    );
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/html; charset=utf-8")
        .body(full(html))
        .expect("valid response")
}

/// Appends query parameters to a redirect URI.
fn with_params(uri: &str, params: &[(&str, &str)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", ser.finish())
}

/// `GET /oauth2/authorize`: approves at once for the default account.
pub(super) fn authorize(emu: &Emulator, req: &Request<Incoming>) -> Response<Body> {
    let q = query(req);
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("client_id") != Some(emu.inner.config.app_key.as_str()) {
        return page(StatusCode::BAD_REQUEST, "Invalid client_id: no such app.");
    }
    let redirect = get("redirect_uri").map(str::to_owned);
    if let Some(r) = &redirect
        && !(r.starts_with("https://")
            || r.starts_with("http://localhost")
            || r.starts_with("http://127.0.0.1"))
    {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid redirect_uri: it must be https or localhost.",
        );
    }
    let state = get("state").unwrap_or_default();
    if state.len() > 500 {
        return page(StatusCode::BAD_REQUEST, "state must be at most 500 bytes.");
    }
    let fail = |error: &str, description: &str| match &redirect {
        Some(r) => Response::builder()
            .status(StatusCode::FOUND)
            .header(
                LOCATION,
                with_params(
                    r,
                    &[
                        ("error", error),
                        ("error_description", description),
                        ("state", state),
                    ],
                ),
            )
            .body(empty())
            .expect("valid response"),
        None => page(StatusCode::BAD_REQUEST, description),
    };
    if get("response_type") != Some("code") {
        return fail(
            "unsupported_response_type",
            "response_type must be \"code\"",
        );
    }
    let challenge = match (get("code_challenge"), get("code_challenge_method")) {
        (None, _) => None,
        (Some(c), None | Some("S256")) => Some(("S256".to_owned(), c.to_owned())),
        (Some(c), Some("plain")) => Some(("plain".to_owned(), c.to_owned())),
        (Some(_), Some(_)) => {
            return fail(
                "invalid_request",
                "code_challenge_method must be S256 or plain",
            );
        }
    };
    let offline = get("token_access_type") == Some("offline");
    let code = secret(32);
    let mut world = emu.world();
    let account = world.signed_in;
    world.codes.insert(
        code.clone(),
        CodeGrant {
            account,
            redirect_uri: redirect.clone(),
            challenge,
            offline,
            scope: get("scope").unwrap_or(DEFAULT_SCOPE).to_owned(),
            created: Instant::now(),
        },
    );
    drop(world);
    match redirect {
        Some(r) => Response::builder()
            .status(StatusCode::FOUND)
            .header(
                LOCATION,
                with_params(&r, &[("code", &code), ("state", state)]),
            )
            .body(empty())
            .expect("valid response"),
        None => page(
            StatusCode::OK,
            &format!("Enter this code into your app: {code}"),
        ),
    }
}

fn oauth_error(error: &str, description: &str) -> Response<Body> {
    let body = json!({"error": error, "error_description": description});
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .header(CONTENT_TYPE, JSON)
        .body(full(to_header_safe(&body)))
        .expect("valid response")
}

/// `POST /oauth2/token`: `authorization_code` and `refresh_token` grants.
pub(super) async fn token(emu: &Emulator, req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::POST {
        return oauth_error("invalid_request", "use POST");
    }
    super::lock(&emu.inner.log).record("oauth2/token", "-");
    let basic = parse_authorization(
        req.headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return oauth_error("invalid_request", "request body too large"),
    };
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (client_id, client_secret) = match &basic {
        Credentials::Basic { key, secret } => (Some(key.as_str()), Some(secret.as_str())),
        _ => (get("client_id"), get("client_secret")),
    };
    let config = &emu.inner.config;
    if client_id != Some(config.app_key.as_str()) {
        return oauth_error("invalid_client", "Invalid client_id or client_secret");
    }
    if client_secret.is_some_and(|s| s != config.app_secret) {
        return oauth_error("invalid_client", "Invalid client_id or client_secret");
    }
    let secret_ok = client_secret.is_some();
    let life = config.token_lifetime;
    let mut world = emu.world();
    let answer = match get("grant_type") {
        Some("authorization_code") => {
            let Some(grant) = get("code").and_then(|c| world.codes.remove(c)) else {
                return oauth_error("invalid_grant", "code doesn't exist or has expired");
            };
            if grant.created.elapsed() > CODE_LIFE {
                return oauth_error("invalid_grant", "code doesn't exist or has expired");
            }
            if grant.redirect_uri.as_deref() != get("redirect_uri") {
                return oauth_error("invalid_grant", "redirect_uri mismatch");
            }
            let pkce = match (&grant.challenge, get("code_verifier")) {
                (Some((method, challenge)), Some(verifier)) => {
                    let computed = if method == "S256" {
                        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
                    } else {
                        verifier.to_owned()
                    };
                    if &computed != challenge {
                        return oauth_error("invalid_grant", "invalid code verifier");
                    }
                    true
                }
                (Some(_), None) if !secret_ok => {
                    return oauth_error("invalid_grant", "code_verifier is required");
                }
                _ if secret_ok => false,
                _ => {
                    return oauth_error(
                        "invalid_request",
                        "No auth function available for given request",
                    );
                }
            };
            let refresh = grant.offline.then(|| {
                let rt = secret(48);
                world.refresh.insert(
                    rt.clone(),
                    RefreshGrant {
                        account: grant.account,
                        scope: grant.scope.clone(),
                        pkce,
                    },
                );
                rt
            });
            let access = world.mint(grant.account, refresh.clone(), life);
            let a = &world.accounts[grant.account];
            let mut v = json!({
                "access_token": access, "token_type": "bearer", "expires_in": life.as_secs(),
                "scope": grant.scope, "uid": a.uid.to_string(), "account_id": a.account_id,
            });
            if let Some(rt) = refresh {
                v["refresh_token"] = json!(rt);
            }
            v
        }
        Some("refresh_token") => {
            let Some(rt) = get("refresh_token") else {
                return oauth_error("invalid_request", "No refresh_token");
            };
            let Some(grant) = world.refresh.get(rt) else {
                return oauth_error("invalid_grant", "refresh token is invalid or revoked");
            };
            if !grant.pkce && !secret_ok {
                return oauth_error("invalid_client", "client_secret is required");
            }
            let scope = match get("scope") {
                Some(s) if s.split(' ').all(|w| grant.scope.split(' ').any(|g| g == w)) => {
                    s.to_owned()
                }
                Some(_) => {
                    return oauth_error(
                        "invalid_scope",
                        "scope is not a subset of the granted scope",
                    );
                }
                None => grant.scope.clone(),
            };
            let account = grant.account;
            let access = world.mint(account, Some(rt.to_owned()), life);
            json!({"access_token": access, "token_type": "bearer", "expires_in": life.as_secs(),
                   "scope": scope})
        }
        Some(_) => return oauth_error("unsupported_grant_type", "grant_type is not supported"),
        None => return oauth_error("invalid_request", "No grant_type"),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, JSON)
        .body(full(to_header_safe(&answer)))
        .expect("valid response")
}

pub(super) fn revoke(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
    if let super::Caller::User { token, .. } = &call.caller {
        emu.world().revoke(token);
    }
    Ok(Reply::Json(serde_json::Value::Null))
}

pub(super) fn current_account(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
    let account = user(call)?;
    let world = emu.world();
    let a = &world.accounts[account];
    let given = a.name.split(' ').next().unwrap_or(&a.name).to_owned();
    let surname = a
        .name
        .split_once(' ')
        .map(|(_, s)| s)
        .unwrap_or("")
        .to_owned();
    let abbreviated: String = a
        .name
        .split(' ')
        .filter_map(|w| w.chars().next())
        .flat_map(char::to_uppercase)
        .collect();
    let ns = a.namespace_id();
    Ok(Reply::Json(json!({
        "account_id": a.account_id,
        "name": {"given_name": given, "surname": surname, "familiar_name": given,
                 "display_name": a.name, "abbreviated_name": abbreviated},
        "email": a.email,
        "email_verified": true,
        "disabled": false,
        "country": "US",
        "locale": "en",
        "referral_link": format!("https://www.dropbox.com/referrals/{}", &a.account_id[5..17]),
        "is_paired": false,
        "account_type": {".tag": "basic"},
        "root_info": {".tag": "user", "root_namespace_id": ns, "home_namespace_id": ns},
    })))
}
