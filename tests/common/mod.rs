//! Starts real servers on ephemeral ports with temporary databases, and talks to them over HTTP.
#![allow(dead_code)]

pub mod crash_engine;
pub mod federation;
pub mod ldap;
pub mod oidc;
pub mod peer;
pub mod process;
pub mod smtp;

use std::path::Path;

use parvis::{config::Config, server::RunningServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Digest;

pub struct TestServer {
    pub server: Option<RunningServer>,
    pub base: String,
    pub http: reqwest::Client,
}

pub fn config(data: &Path) -> Config {
    let mut config = Config::load(None, Vec::<(String, String)>::new()).unwrap();
    config.server_name = "test.local".try_into().unwrap();
    config.listen.client = "127.0.0.1:0".parse().unwrap();
    config.storage.path = data.to_owned();
    config.rate_limits.enabled = false;
    // Several servers run at once: the TLS federation listener takes any free port.
    config.federation.listen = "127.0.0.1:0".parse().unwrap();
    // Peers, push gateways and identity servers of the tests listen on loopback, which
    // `network.deny_ranges` refuses by default.
    config.network.allow_ranges = vec!["127.0.0.0/8".into(), "::1/128".into()];
    use_test_engine(&mut config, data);
    config
}

/// The `PARVIS_STORAGE__*` variables that make a `parvis` process started by a test use the
/// same database as `config(data)` (nothing with RocksDB, where the folder says it all).
pub fn engine_env(data: &Path) -> Vec<(String, String)> {
    let config = config(data);
    match config.storage.engine {
        parvis::config::EngineKind::Rocksdb => Vec::new(),
        parvis::config::EngineKind::Postgres => vec![
            ("PARVIS_STORAGE__ENGINE".into(), "postgres".into()),
            (
                "PARVIS_STORAGE__POSTGRES__URL".into(),
                config.storage.postgres.url,
            ),
            (
                "PARVIS_STORAGE__POSTGRES__SCHEMA".into(),
                config.storage.postgres.schema,
            ),
        ],
    }
}

/// Whether the tests store in PostgreSQL (`PARVIS_TEST_ENGINE=postgres`).
pub fn on_postgres() -> bool {
    std::env::var("PARVIS_TEST_ENGINE").as_deref() == Ok("postgres")
}

/// With `PARVIS_TEST_ENGINE=postgres` (and `PARVIS_TEST_PG`, from `scripts/with-postgres.sh`),
/// the server stores in PostgreSQL: a schema named after the data folder, so a restart on the
/// same folder finds the same data.
pub fn use_test_engine(config: &mut Config, data: &Path) {
    if !on_postgres() {
        return;
    }
    let url = std::env::var("PARVIS_TEST_PG")
        .expect("PARVIS_TEST_ENGINE=postgres needs PARVIS_TEST_PG (scripts/with-postgres.sh)");
    let digest = sha2::Sha256::digest(data.to_string_lossy().as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    config.storage.engine = parvis::config::EngineKind::Postgres;
    config.storage.postgres.url = url;
    config.storage.postgres.schema = format!("t_{hex}");
    config.storage.postgres.pool_size = 2;
}

impl TestServer {
    pub async fn start(data: &Path) -> Self {
        Self::start_with(config(data)).await
    }

    pub async fn start_with(config: Config) -> Self {
        let server = parvis::server::start(config).await.expect("server starts");
        let base = format!("http://{}", server.addr);
        Self {
            server: Some(server),
            base,
            http: reqwest::Client::new(),
        }
    }

    /// Another handle on this server's client API (for concurrent tasks); it does not stop it.
    #[allow(dead_code)]
    pub fn handle(&self) -> TestServer {
        TestServer {
            server: None,
            base: self.base.clone(),
            http: self.http.clone(),
        }
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    /// Sends a request; returns the status and the JSON body (Null when the body is not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Value {
        let (status, body) = self.call(Method::POST, path, Some(token), Some(body)).await;
        assert_eq!(status, StatusCode::OK, "POST {path}: {body}");
        body
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Value {
        let (status, body) = self.call(Method::PUT, path, Some(token), Some(body)).await;
        assert_eq!(status, StatusCode::OK, "PUT {path}: {body}");
        body
    }

    /// Registers `localpart` with the dummy flow; returns (user id, access token).
    /// `GET /account/whoami` with `token`: whether (and as whom) it is signed in.
    pub async fn whoami(&self, token: &str) -> (StatusCode, Value) {
        self.call(
            Method::GET,
            "/_matrix/client/v3/account/whoami",
            Some(token),
            None,
        )
        .await
    }

    pub async fn register(&self, localpart: &str) -> (String, String) {
        let body = json!({ "username": localpart, "password": "secret-password" });
        let (status, done) = self.register_with(body).await;
        assert_eq!(status, StatusCode::OK, "{done}");
        (
            done["user_id"].as_str().unwrap().to_owned(),
            done["access_token"].as_str().unwrap().to_owned(),
        )
    }

    /// `POST /register` with `body` through the dummy flow (a first call for the session, then
    /// the same body with the dummy stage); the status and the answer of the second call.
    pub async fn register_with(&self, body: Value) -> (StatusCode, Value) {
        let path = "/_matrix/client/v3/register";
        let (status, first) = self
            .call(Method::POST, path, None, Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{first}");
        let mut body = body;
        body["auth"] = json!({ "type": "m.login.dummy", "session": first["session"] });
        self.call(Method::POST, path, None, Some(body)).await
    }

    pub async fn create_room(&self, token: &str, body: Value) -> String {
        self.post("/_matrix/client/v3/createRoom", token, body)
            .await["room_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Joins `room` (`POST /join/{roomIdOrAlias}`); returns the answer.
    pub async fn join(&self, token: &str, room: &str) -> Value {
        self.post(
            &format!("/_matrix/client/v3/join/{}", enc(room)),
            token,
            json!({}),
        )
        .await
    }

    pub async fn send_text(&self, token: &str, room: &str, txn: &str, text: &str) -> String {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}",
            enc(room)
        );
        self.put(&path, token, json!({ "msgtype": "m.text", "body": text }))
            .await["event_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// The body of a password login of `user` (a localpart or a user id).
pub fn password_login(user: &str, password: &str) -> Value {
    json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": user },
            "password": password })
}

impl TestServer {
    /// `POST /login` with `body`; the status and the answer.
    pub async fn login(&self, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, "/_matrix/client/v3/login", None, Some(body))
            .await
    }

    /// Starts a server on `config` whose `@root` (password `secret-password`, registered on a
    /// first start) is a server admin; root's access token.
    pub async fn start_with_admin(config: Config) -> (Self, String) {
        let first = Self::start_with(config.clone()).await;
        first.register("root").await;
        first.stop().await;
        parvis::services::admin::make_admin::make_admin(config.clone(), "@root:test.local")
            .unwrap();
        let server = Self::start_with(config).await;
        let (status, root) = server
            .login(password_login("root", "secret-password"))
            .await;
        assert_eq!(status, StatusCode::OK, "root logs in: {root}");
        (server, root["access_token"].as_str().unwrap().to_owned())
    }
}

/// Asserts that an answer is the error `errcode` with `status`.
#[track_caller]
pub fn assert_error(status: StatusCode, body: &Value, want: StatusCode, errcode: &str) {
    assert_eq!(
        (status, body["errcode"].as_str()),
        (want, Some(errcode)),
        "{body}"
    );
}

pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
