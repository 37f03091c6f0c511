//! A small Matrix client-server API client for the load workloads.
//!
//! One `reqwest::Client` (HTTP/1.1, keep-alive pool, TCP_NODELAY, no proxy) is shared by all
//! simulated users; every request carries its own timeout.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Res, bail, err};

/// Default timeout of an ordinary request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Timeout of an initial `/sync` or sliding sync request (without `since` / `pos`).
pub const INITIAL_SYNC_TIMEOUT: Duration = Duration::from_secs(600);

/// A client of one server, or of the processes of a group in turn (each request to the next).
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    bases: std::sync::Arc<Vec<String>>,
    turn: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Clone, Debug)]
pub struct User {
    #[allow(dead_code)] // kept for debugging output
    pub user_id: String,
    pub token: String,
}

/// Percent-encodes one path segment (everything except RFC 3986 unreserved characters).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn snippet(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim();
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s.to_string()
    }
}

impl Api {
    pub fn new(base: String) -> Res<Self> {
        Self::new_many(vec![base])
    }

    /// Requests go to `bases` in turn (the processes of a group, as a round-robin balancer would).
    pub fn new_many(bases: Vec<String>) -> Res<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(usize::MAX)
            .pool_idle_timeout(Duration::from_secs(300))
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Api {
            http,
            bases: std::sync::Arc::new(bases),
            turn: Default::default(),
        })
    }

    /// Sends a request and returns the status and the JSON body (`Value::Null` if the body is not JSON).
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Res<(StatusCode, Value, Vec<u8>)> {
        let turn = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let url = format!("{}{}", self.bases[turn % self.bases.len()], path);
        let mut rb = self.http.request(method.clone(), &url).timeout(timeout);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send().await.map_err(|e| err!("{method} {path}: {e}"))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| err!("{method} {path}: reading body: {e}"))?;
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, value, bytes.to_vec()))
    }

    /// Like `call_raw`, but fails unless the status is 2xx.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Res<Value> {
        let (status, value, bytes) = self
            .call_raw(method.clone(), path, token, body, timeout)
            .await?;
        if !status.is_success() {
            bail!("{method} {path}: HTTP {status}: {}", snippet(&bytes));
        }
        Ok(value)
    }

    /// `GET /_matrix/client/versions` answered with 200 and a JSON body listing versions.
    pub async fn versions_ok(&self) -> bool {
        match self
            .call_raw(
                Method::GET,
                "/_matrix/client/versions",
                None,
                None,
                Duration::from_secs(2),
            )
            .await
        {
            Ok((s, v, _)) => s == StatusCode::OK && v.get("versions").is_some(),
            Err(_) => false,
        }
    }

    /// Registers `username` with the `m.login.dummy` user-interactive auth flow.
    pub async fn register(&self, username: &str, password: &str) -> Res<User> {
        self.register_with(username, Some(password)).await
    }

    /// Like `register`, but without a password when `password` is `None` (the server has no
    /// password hash to compute; Synapse refuses that, Parvis accepts it).
    pub async fn register_with(&self, username: &str, password: Option<&str>) -> Res<User> {
        let path = "/_matrix/client/v3/register";
        let mut body = json!({
            "username": username,
            "initial_device_display_name": "versus bench",
        });
        if let Some(p) = password {
            body["password"] = json!(p);
        }
        let (status, v, bytes) = self
            .call_raw(Method::POST, path, None, Some(&body), REQUEST_TIMEOUT)
            .await?;
        let v = if status == StatusCode::UNAUTHORIZED {
            let session = v
                .get("session")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    err!(
                        "register {username}: 401 without a UIA session: {}",
                        snippet(&bytes)
                    )
                })?
                .to_string();
            body["auth"] = json!({ "type": "m.login.dummy", "session": session });
            self.call(Method::POST, path, None, Some(&body), REQUEST_TIMEOUT)
                .await?
        } else if status.is_success() {
            v
        } else {
            bail!("register {username}: HTTP {status}: {}", snippet(&bytes));
        };
        let user_id = v.get("user_id").and_then(Value::as_str);
        let token = v.get("access_token").and_then(Value::as_str);
        match (user_id, token) {
            (Some(u), Some(t)) => Ok(User {
                user_id: u.to_string(),
                token: t.to_string(),
            }),
            _ => bail!("register {username}: no user_id/access_token in {v}"),
        }
    }

    /// Creates a room with preset `public_chat` and returns its ID.
    pub async fn create_room(&self, u: &User, name: &str) -> Res<String> {
        let body = json!({ "preset": "public_chat", "name": name });
        let v = self
            .call(
                Method::POST,
                "/_matrix/client/v3/createRoom",
                Some(&u.token),
                Some(&body),
                REQUEST_TIMEOUT,
            )
            .await?;
        v.get("room_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| err!("createRoom: no room_id in {v}"))
    }

    pub async fn join(&self, u: &User, room_id: &str) -> Res<()> {
        let path = format!("/_matrix/client/v3/join/{}", enc(room_id));
        self.call(
            Method::POST,
            &path,
            Some(&u.token),
            Some(&json!({})),
            REQUEST_TIMEOUT,
        )
        .await?;
        Ok(())
    }

    /// Sends an `m.room.message` (`m.text`) and returns the event ID.
    pub async fn send_text(&self, u: &User, room_id: &str, txn: &str, text: &str) -> Res<String> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
            enc(room_id),
            enc(txn)
        );
        let body = json!({ "msgtype": "m.text", "body": text });
        let v = self
            .call(
                Method::PUT,
                &path,
                Some(&u.token),
                Some(&body),
                REQUEST_TIMEOUT,
            )
            .await?;
        v.get("event_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| err!("send: no event_id in {v}"))
    }

    /// `GET /sync`; returns the parsed body and its size in bytes.
    pub async fn sync(
        &self,
        u: &User,
        since: Option<&str>,
        timeout_ms: u64,
    ) -> Res<(Value, usize)> {
        self.sync_filtered(u, since, timeout_ms, None).await
    }

    /// `GET /sync` with an inline JSON `filter` (if any); returns the parsed body and its size.
    pub async fn sync_filtered(
        &self,
        u: &User,
        since: Option<&str>,
        timeout_ms: u64,
        filter: Option<&str>,
    ) -> Res<(Value, usize)> {
        let mut path = match since {
            Some(s) => format!(
                "/_matrix/client/v3/sync?since={}&timeout={timeout_ms}",
                enc(s)
            ),
            None => format!("/_matrix/client/v3/sync?timeout={timeout_ms}"),
        };
        if let Some(f) = filter {
            path.push_str("&filter=");
            path.push_str(&enc(f));
        }
        // An initial sync of a big account may take minutes (on Synapse).
        let slack = if since.is_none() {
            INITIAL_SYNC_TIMEOUT
        } else {
            REQUEST_TIMEOUT
        };
        let timeout = Duration::from_millis(timeout_ms) + slack;
        let (status, v, bytes) = self
            .call_raw(Method::GET, &path, Some(&u.token), None, timeout)
            .await?;
        if !status.is_success() {
            bail!("GET /sync: HTTP {status}: {}", snippet(&bytes));
        }
        if v.get("next_batch").and_then(Value::as_str).is_none() {
            bail!("GET /sync: no next_batch in response: {}", snippet(&bytes));
        }
        Ok((v, bytes.len()))
    }

    /// Simplified sliding sync (MSC4186): `POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync`
    /// with `pos` (if any) and `timeout` as query parameters; returns the parsed body and its size.
    pub async fn sliding_sync(
        &self,
        u: &User,
        pos: Option<&str>,
        timeout_ms: u64,
        body: &Value,
    ) -> Res<(Value, usize)> {
        let mut path = format!(
            "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync?timeout={timeout_ms}"
        );
        if let Some(p) = pos {
            path.push_str("&pos=");
            path.push_str(&enc(p));
        }
        let slack = if pos.is_none() {
            INITIAL_SYNC_TIMEOUT
        } else {
            REQUEST_TIMEOUT
        };
        let timeout = Duration::from_millis(timeout_ms) + slack;
        let (status, v, bytes) = self
            .call_raw(Method::POST, &path, Some(&u.token), Some(body), timeout)
            .await?;
        if !status.is_success() {
            bail!("POST sliding sync: HTTP {status}: {}", snippet(&bytes));
        }
        if v.get("pos").and_then(Value::as_str).is_none() {
            bail!("POST sliding sync: no pos in response: {}", snippet(&bytes));
        }
        Ok((v, bytes.len()))
    }
}

pub fn next_batch(v: &Value) -> String {
    v["next_batch"].as_str().unwrap_or_default().to_string()
}

/// Whether a sync response carries, in the timeline of `room_id`, a message whose body is `marker`.
pub fn timeline_has_body(v: &Value, room_id: &str, marker: &str) -> bool {
    v["rooms"]["join"][room_id]["timeline"]["events"]
        .as_array()
        .is_some_and(|evs| {
            evs.iter()
                .any(|e| e["content"]["body"].as_str() == Some(marker))
        })
}
