//! `/_emulator/*`, served only with `--admin`: the request log, faults, forced token expiry,
//! forced cursor reset, accounts, and who is signed in to the browser (OAuth approves for them).

use super::faults::Faults;
use super::state::AccountSpec;
use super::wire::{json_response, text};
use super::{Emulator, lock};
use crate::http::{Body, empty};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expire {
    token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    account: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    name: String,
    token: Option<String>,
}

async fn body_json<T: for<'de> Deserialize<'de>>(
    req: Request<Incoming>,
    empty_ok: Option<T>,
) -> Result<T, String> {
    let bytes = Limited::new(req.into_body(), 1024 * 1024)
        .collect()
        .await
        .map_err(|e| format!("cannot read body: {e}"))?
        .to_bytes();
    match (bytes.is_empty(), empty_ok) {
        (true, Some(default)) => Ok(default),
        _ => serde_json::from_slice(&bytes).map_err(|e| format!("bad JSON: {e}")),
    }
}

pub(super) async fn handle(emu: &Emulator, req: Request<Incoming>) -> Response<Body> {
    let path = req
        .uri()
        .path()
        .trim_start_matches("/_emulator/")
        .to_owned();
    let ok = |v: Value| json_response(StatusCode::OK, &v);
    let bad = |e: String| text(StatusCode::BAD_REQUEST, e);
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "log") => ok(json!(emu.log())),
        (Method::DELETE, "log") => {
            emu.reset_log();
            Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(empty())
                .expect("valid")
        }
        (Method::GET, "faults") => ok(json!(*lock(&emu.inner.faults))),
        (Method::PUT | Method::POST, "faults") => {
            match body_json::<Faults>(req, None)
                .await
                .and_then(|f| f.validated().map_err(|e| e.to_string()))
            {
                Ok(f) => {
                    let v = json!(f);
                    emu.set_faults(f);
                    ok(v)
                }
                Err(e) => bad(e),
            }
        }
        (Method::DELETE, "faults") => {
            emu.set_faults(Faults::default());
            ok(json!(Faults::default()))
        }
        (Method::POST, "expire_tokens") => match body_json(req, Some(Expire { token: None })).await
        {
            Ok(e) => ok(json!({"expired": emu.expire_tokens(e.token.as_deref())})),
            Err(e) => bad(e),
        },
        (Method::POST, "sign_in") => match body_json::<SignIn>(req, None).await {
            Ok(s) if emu.sign_in(s.account) => ok(json!({"signed_in": s.account})),
            Ok(s) => bad(format!("no account {}", s.account)),
            Err(e) => bad(e),
        },
        (Method::POST, "reset_cursors") => {
            emu.reset_cursors();
            ok(json!({}))
        }
        (Method::GET, "accounts") => {
            let world = emu.world();
            let list: Vec<Value> = world
                .accounts
                .iter()
                .map(|a| json!({"name": a.name, "account_id": a.account_id, "uid": a.uid, "email": a.email}))
                .collect();
            ok(json!(list))
        }
        (Method::POST, "accounts") => match body_json::<NewAccount>(req, None).await {
            Ok(n) => {
                let spec = AccountSpec {
                    name: n.name,
                    token: n.token,
                    root: None,
                };
                match emu.add_account(&spec) {
                    Ok(id) => ok(json!({"account_id": id})),
                    Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                }
            }
            Err(e) => bad(e),
        },
        _ => text(StatusCode::NOT_FOUND, "Not Found".into()),
    }
}
