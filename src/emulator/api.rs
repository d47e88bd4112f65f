//! One API call, top to bottom: route → method → credentials → request log → faults →
//! argument (by endpoint style) → the route's handler → the answer in Dropbox's shape.

use super::faults::FaultKind;
use super::routes::{AuthKind, ROUTES, Style, read_call};
use super::wire::{self, ApiError, Credentials, parse_authorization};
use super::{Call, Caller, Emulator, Reply, body, files, lock, oauth, sharing, thumbnail};
use crate::http::Body;
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Method, Request, Response, StatusCode};

/// Counts an API call in flight until dropped (the answer's head is out).
struct InFlight<'a>(&'a Emulator);

impl<'a> InFlight<'a> {
    fn enter(emu: &'a Emulator) -> Self {
        lock(&emu.inner.log).enter();
        InFlight(emu)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(&self.0.inner.log).leave();
    }
}

impl Emulator {
    pub(super) async fn api(
        &self,
        name: &str,
        req: Request<Incoming>,
        base_url: String,
    ) -> Response<Body> {
        // 1. route
        let Some(&(route, style, auth, void)) = ROUTES.iter().find(|r| r.0 == name) else {
            return ApiError::NotFound.into_response(name);
        };
        let _in_flight = (route != "files/list_folder/longpoll").then(|| InFlight::enter(self));
        let latency = lock(&self.inner.faults).latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        // 2. method: all POST; content-download routes also GET.
        let method_ok = req.method() == Method::POST
            || (style == Style::Download && req.method() == Method::GET);
        if !method_ok {
            return wire::text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("Error in call to API function \"{route}\": Method not allowed"),
            );
        }
        let query: Vec<(String, String)> = req
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        // 3. credentials
        let header_auth = req
            .headers()
            .get(AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or("\u{fffd}"));
        let creds = parse_authorization(header_auth.or(param("authorization")));
        let caller = self.authenticate(auth, creds);
        // 4. the request log counts every call that names a route, failed or not.
        let account = {
            let account = match &caller {
                Ok(Caller::User { account, .. }) => {
                    self.world().accounts[*account].account_id.clone()
                }
                Ok(Caller::App) => "app".to_owned(),
                _ => "-".to_owned(),
            };
            lock(&self.inner.log).record(route, &account);
            account
        };
        let caller = match caller {
            Ok(c) => c,
            Err(e) => return e.into_response(route),
        };
        // 5. faults that replace the answer
        let fault = lock(&self.inner.faults).draw(route, false);
        match fault {
            Some(FaultKind::RateLimit { retry_after }) => {
                lock(&self.inner.log).told_to_wait(&account, retry_after);
                return ApiError::RateLimited { retry_after }.into_response(route);
            }
            Some(FaultKind::Status(code)) => {
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return ApiError::Server(status).into_response(route);
            }
            _ => {}
        }
        // 6. the argument, by endpoint style
        let (parts, incoming) = req.into_parts();
        let call = match read_call(style, void, &parts.headers, param("arg"), incoming).await {
            Ok((arg, body)) => Call {
                route,
                caller,
                arg,
                body,
                headers: parts.headers,
                base_url,
            },
            Err(e) => return e.into_response(route),
        };
        // 7. the handler
        let reply = match route {
            "files/list_folder" => files::list_folder(self, &call),
            "files/list_folder/continue" => files::list_folder_continue(self, &call),
            "files/list_folder/get_latest_cursor" => files::get_latest_cursor(self, &call),
            "files/list_folder/longpoll" => files::longpoll(self, &call).await,
            "files/get_metadata" => files::get_metadata(self, &call),
            "files/download" => files::download(self, &call),
            "files/get_thumbnail_v2" => thumbnail::get_thumbnail_v2(self, &call).await,
            "files/get_temporary_link" => files::get_temporary_link(self, &call),
            "files/upload" => files::upload(self, &call),
            "files/delete_v2" => files::delete(self, &call),
            "files/move_v2" => files::move_v2(self, &call),
            "files/create_folder_v2" => files::create_folder(self, &call),
            "sharing/create_shared_link_with_settings" => sharing::create(self, &call),
            "sharing/get_shared_link_metadata" => sharing::metadata(self, &call),
            "sharing/get_shared_link_file" => sharing::file(self, &call),
            "sharing/list_shared_links" => sharing::list(self, &call),
            "users/get_current_account" => oauth::current_account(self, &call),
            "auth/token/revoke" => oauth::revoke(self, &call),
            "check/user" | "check/app" => check(&call),
            _ => Err(ApiError::NotFound),
        };
        // 8. the answer
        match reply {
            Ok(Reply::Json(v)) => wire::json_response(StatusCode::OK, &v),
            Ok(Reply::Download(dl)) => {
                let fault = lock(&self.inner.faults).draw(route, true);
                let resp = body::respond(dl, &call.headers, fault);
                let len = resp
                    .headers()
                    .get(hyper::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                lock(&self.inner.log).body_bytes += len.unwrap_or(0);
                resp
            }
            Err(e) => e.into_response(route),
        }
    }

    fn authenticate(&self, auth: AuthKind, creds: Credentials) -> Result<Caller, ApiError> {
        let expecting = |want: &str, got: &str| {
            ApiError::BadInput(format!(
                "Invalid authorization value in HTTP header \"Authorization\": \"{}\". Expecting \"{want}\".",
                // SECURITY: never echo a credential; show only its scheme.
                got.split(' ').next().unwrap_or_default()
            ))
        };
        let bearer = "Bearer <oauth2-access-token>";
        let basic = "Basic <base64(APP_KEY:APP_SECRET)>";
        match (auth, creds) {
            (AuthKind::NoAuth, Credentials::None) => Ok(Caller::Anonymous),
            (AuthKind::NoAuth, _) => Err(ApiError::BadInput(
                "Your request includes an Authorization header, but this function does not use it."
                    .into(),
            )),
            (_, Credentials::None) => Err(ApiError::BadInput(
                "Must provide HTTP header \"Authorization\" or URL parameter \"authorization\"."
                    .into(),
            )),
            (AuthKind::App, Credentials::Bearer(_)) => Err(expecting(basic, "Bearer")),
            (AuthKind::User, Credentials::Basic { .. }) => Err(expecting(bearer, "Basic")),
            (AuthKind::App | AuthKind::AppOrUser, Credentials::Basic { key, secret }) => {
                let c = &self.inner.config;
                if key == c.app_key && secret == c.app_secret {
                    Ok(Caller::App)
                } else {
                    Err(ApiError::Auth("invalid_access_token"))
                }
            }
            (_, Credentials::Bearer(token)) => {
                let account = self.world().user(&token)?;
                Ok(Caller::User { account, token })
            }
            (AuthKind::App, Credentials::Malformed(v)) => Err(expecting(basic, &v)),
            (_, Credentials::Malformed(v)) => Err(expecting(bearer, &v)),
        }
    }
}

/// `check/user` and `check/app`: echo `query` as `result`.
fn check(call: &Call) -> Result<Reply, ApiError> {
    let query = call.arg.opt_str("query")?.unwrap_or_default();
    Ok(Reply::Json(serde_json::json!({ "result": query })))
}
