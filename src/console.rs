//! `dropcache accounts …`: link, list and unlink accounts on a running proxy, through its
//! admin API (so it works whatever the store, the embedded one included, and from afar).
//!
//! `link` asks `/oauth/start` for Dropbox's authorize URL and prints it; the owner approves
//! there. It then finishes whichever way comes first: the browser returns to the proxy's
//! `/oauth/callback` (seen by polling the account), or the owner pastes the code Dropbox showed
//! (or the whole URL the browser landed on) and this hands it to `/oauth/callback` itself.

use crate::secret::Secret;
use crate::upstream::transport::{HttpClient, http_client};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{AUTHORIZATION, LOCATION};
use hyper::{Method, Request, StatusCode};
use serde_json::Value;
use std::io::Write;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// How often `link` looks whether the browser finished.
const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("cannot reach the proxy at {url}: {why}")]
    Unreachable { url: String, why: String },
    /// The proxy's own words (its errors never hold secrets).
    #[error("the proxy answered {status}: {text}")]
    Refused { status: StatusCode, text: String },
    #[error("{0}")]
    Usage(String),
    #[error("no answer within {0:?}: start again")]
    TimedOut(Duration),
}

/// A client of one proxy's admin API.
pub struct Console {
    http: HttpClient,
    base: String,
    token: Secret<String>,
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl Console {
    pub fn new(base: &str, token: Secret<String>) -> Result<Console, ConsoleError> {
        let http = http_client(Duration::from_secs(5), None)
            .map_err(|e| ConsoleError::Usage(e.to_string()))?;
        Ok(Console {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    async fn call(&self, method: Method, path: &str, admin: bool) -> Result<Answer, ConsoleError> {
        let url = format!("{}{path}", self.base);
        let mut req = Request::builder().method(method).uri(&url);
        if admin {
            req = req.header(AUTHORIZATION, format!("Bearer {}", self.token.expose()));
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| ConsoleError::Usage(format!("bad server URL {url:?}: {e}")))?;
        let unreachable = |why: String| ConsoleError::Unreachable {
            url: self.base.clone(),
            why,
        };
        let resp = tokio::time::timeout(Duration::from_secs(60), self.http.request(req))
            .await
            .map_err(|_| unreachable("no answer within 60s".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let status = resp.status();
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = Limited::new(resp.into_body(), 4 * 1024 * 1024)
            .collect()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        Ok(Answer {
            status,
            location,
            body: String::from_utf8_lossy(&body).trim().to_owned(),
        })
    }

    fn refused(a: Answer) -> ConsoleError {
        ConsoleError::Refused {
            status: a.status,
            text: a.body,
        }
    }

    /// The accounts the proxy publishes.
    pub async fn list(&self) -> Result<Vec<Value>, ConsoleError> {
        let a = self.call(Method::GET, "/admin/accounts", true).await?;
        if a.status != StatusCode::OK {
            return Err(Self::refused(a));
        }
        serde_json::from_str(&a.body)
            .map_err(|e| ConsoleError::Usage(format!("unreadable answer: {e}")))
    }

    /// When `alias` was last linked, if it is.
    async fn linked_at(&self, alias: &str) -> Result<Option<String>, ConsoleError> {
        let a = self
            .call(Method::GET, &format!("/admin/accounts/{alias}"), true)
            .await?;
        match a.status {
            StatusCode::OK => Ok(serde_json::from_str::<Value>(&a.body)
                .ok()
                .and_then(|v| v["linked_at"].as_str().map(str::to_owned))),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(Self::refused(a)),
        }
    }

    /// Links `alias`: prints the URL to `out`, then waits for the browser or a pasted code.
    /// Returns the proxy's word on the link.
    pub async fn link(
        &self,
        alias: &str,
        root: &str,
        redirect: bool,
        wait: Duration,
        out: &mut (dyn Write + Send),
    ) -> Result<String, ConsoleError> {
        let before = self.linked_at(alias).await?;
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("alias", alias).append_pair("root", root);
        if !redirect {
            q.append_pair("redirect", "none");
        }
        let a = self
            .call(Method::GET, &format!("/oauth/start?{}", q.finish()), true)
            .await?;
        let (StatusCode::FOUND, Some(url)) = (a.status, a.location.clone()) else {
            return Err(Self::refused(a));
        };
        let state = form_urlencoded::parse(url.split_once('?').map_or("", |s| s.1).as_bytes())
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .ok_or_else(|| ConsoleError::Usage("the authorize URL has no state".into()))?;
        let _ = writeln!(
            out,
            "Open this URL in a browser signed in to the Dropbox account to link as {alias:?}:\n\n  {url}\n"
        );
        let _ = if redirect {
            writeln!(
                out,
                "Approve, and Dropbox sends the browser back to the proxy. If it cannot reach the proxy, paste the URL it landed on (or its code) here:"
            )
        } else {
            writeln!(out, "Approve, then paste the code Dropbox shows here:")
        };
        let _ = out.flush();
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let mut stdin_open = true;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                line = lines.next_line(), if stdin_open => match line {
                    Ok(Some(line)) if !line.trim().is_empty() => {
                        return self.paste(line.trim(), &state).await;
                    }
                    Ok(Some(_)) => {}
                    _ => stdin_open = false,
                },
                () = tokio::time::sleep(POLL) => {
                    let now = self.linked_at(alias).await?;
                    if now.is_some() && now != before {
                        return Ok(format!("linked: /{alias}/ (at {})", now.unwrap_or_default()));
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(ConsoleError::TimedOut(wait));
                    }
                }
            }
        }
    }

    /// Hands a pasted code (or the URL the browser landed on) to `/oauth/callback`.
    async fn paste(&self, pasted: &str, state: &str) -> Result<String, ConsoleError> {
        let from_url: Vec<(String, String)> = pasted
            .split_once('?')
            .map(|(_, q)| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let get = |k: &str| {
            from_url
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("state", &get("state").unwrap_or_else(|| state.to_owned()));
        match (get("code"), get("error")) {
            (Some(code), _) => q.append_pair("code", &code),
            (None, Some(error)) => q.append_pair("error", &error),
            (None, None) if from_url.is_empty() => q.append_pair("code", pasted),
            (None, None) => return Err(ConsoleError::Usage("that URL has no code".into())),
        };
        let a = self
            .call(
                Method::GET,
                &format!("/oauth/callback?{}", q.finish()),
                false,
            )
            .await?;
        if a.status != StatusCode::OK {
            return Err(Self::refused(a));
        }
        Ok(a.body)
    }

    /// Unlinks `alias`; the proxy's answer.
    pub async fn unlink(&self, alias: &str) -> Result<Value, ConsoleError> {
        let a = self
            .call(Method::DELETE, &format!("/admin/accounts/{alias}"), true)
            .await?;
        if a.status != StatusCode::OK {
            return Err(Self::refused(a));
        }
        serde_json::from_str(&a.body)
            .map_err(|e| ConsoleError::Usage(format!("unreadable answer: {e}")))
    }
}
