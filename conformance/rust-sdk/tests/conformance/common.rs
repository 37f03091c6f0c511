//! What the scenarios share: the server's address (env PARVIS_URL), users registered through the plain
//! client-server API (reqwest), SDK clients logged in with a password (sqlite stores in a temporary
//! directory, sliding sync discovered from /versions as Element X does), and waiting for a condition.

use std::{
    future::Future,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, anyhow, bail};
use matrix_sdk::{
    Client,
    encryption::{BackupDownloadStrategy, EncryptionSettings},
    ruma::api::client::uiaa,
    sliding_sync::VersionBuilder,
};
use matrix_sdk_ui::sync_service::SyncService;
use serde_json::{Value, json};
use tempfile::TempDir;

pub const PASSWORD: &str = "correct horse battery staple";

/// The base URL of the live Parvis, e.g. `http://127.0.0.1:8008` (set by run.sh).
pub fn base_url() -> String {
    std::env::var("PARVIS_URL")
        .expect("PARVIS_URL is not set: run the scenarios through conformance/rust-sdk/run.sh")
        .trim_end_matches('/')
        .to_owned()
}

/// Logging of the SDK and of these tests: RUST_LOG (default `warn`), to the test's captured output.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// A localpart unique in this run and across runs against the same server: `prefix` + time + counter.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() % 100_000_000;
    format!("{prefix}_{millis}_{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A user of the plain client-server API (reqwest), for setting up what the SDK then reads.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    pub user_id: String,
    pub localpart: String,
    pub token: String,
}

static TXN: AtomicU64 = AtomicU64::new(0);

impl Api {
    /// Registers `localpart` with `PASSWORD` (UIA with m.login.dummy, as Parvis's open registration asks).
    pub async fn register(localpart: &str) -> Result<Api> {
        let http = reqwest::Client::new();
        let base = base_url();
        let url = format!("{base}/_matrix/client/v3/register");
        let mut body = json!({
            "username": localpart,
            "password": PASSWORD,
            "auth": {"type": "m.login.dummy"},
            "initial_device_display_name": "setup (reqwest)",
        });
        let mut response = http.post(&url).json(&body).send().await?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            // A server that wants the UIA session first: answer again within its session.
            let uia: Value = response.json().await?;
            body["auth"]["session"] = uia["session"].clone();
            response = http.post(&url).json(&body).send().await?;
        }
        let status = response.status();
        let value: Value = response.json().await?;
        if !status.is_success() {
            bail!("POST /register {localpart}: {status} {value}");
        }
        Ok(Api {
            http,
            base,
            user_id: value["user_id"].as_str().context("register: no user_id")?.to_owned(),
            localpart: localpart.to_owned(),
            token: value["access_token"].as_str().context("register: no access_token")?.to_owned(),
        })
    }

    /// One request; a non-2xx answer is an error carrying the status and the body.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{}", self.base, path);
        let mut request = self.http.request(method.clone(), &url).bearer_auth(&self.token);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{method} {path} {}: {status} {text}", body.map(|b| b.to_string()).unwrap_or_default());
        }
        if text.is_empty() { Ok(Value::Null) } else { Ok(serde_json::from_str(&text)?) }
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Result<Value> {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn create_room(&self, body: Value) -> Result<String> {
        let answer = self.post("/_matrix/client/v3/createRoom", body).await?;
        Ok(answer["room_id"].as_str().context("createRoom: no room_id")?.to_owned())
    }

    pub async fn join(&self, room_id: &str) -> Result<()> {
        self.post(&format!("/_matrix/client/v3/join/{}", enc(room_id)), json!({})).await?;
        Ok(())
    }

    pub async fn send_event(&self, room_id: &str, event_type: &str, content: Value) -> Result<String> {
        let txn = format!("t{}-{}", std::process::id(), TXN.fetch_add(1, Ordering::Relaxed));
        let path =
            format!("/_matrix/client/v3/rooms/{}/send/{}/{}", enc(room_id), enc(event_type), txn);
        let answer = self.put(&path, content).await?;
        Ok(answer["event_id"].as_str().context("send: no event_id")?.to_owned())
    }

    pub async fn send_text(&self, room_id: &str, body: &str) -> Result<String> {
        self.send_event(room_id, "m.room.message", json!({"msgtype": "m.text", "body": body})).await
    }

    pub async fn event(&self, room_id: &str, event_id: &str) -> Result<Value> {
        self.get(&format!("/_matrix/client/v3/rooms/{}/event/{}", enc(room_id), enc(event_id))).await
    }
}

/// Percent-encodes a path segment (room ids, event ids and types hold `!`, `$`, `:`, `#`).
pub fn enc(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An SDK client and the temporary directory of its sqlite stores (removed when dropped).
pub struct Sdk {
    pub client: Client,
    _dir: TempDir,
}

/// A new SDK client for the server, not logged in, as Element X builds it: sqlite stores, sliding
/// sync discovered from /versions (org.matrix.simplified_msc3575), room keys downloaded from the
/// backup after a decryption failure.
pub async fn new_client() -> Result<Sdk> {
    let dir = tempfile::Builder::new().prefix("parvis-rust-sdk-store-").tempdir()?;
    let client = Client::builder()
        .homeserver_url(base_url())
        .sqlite_store(dir.path(), None)
        .sliding_sync_version_builder(VersionBuilder::DiscoverNative)
        .with_encryption_settings(EncryptionSettings {
            auto_enable_cross_signing: false,
            backup_download_strategy: BackupDownloadStrategy::AfterDecryptionFailure,
            auto_enable_backups: false,
        })
        .build()
        .await
        .context("building the SDK client")?;
    Ok(Sdk { client, _dir: dir })
}

/// A new SDK client logged in as `localpart` with `PASSWORD` (a new device named `device_name`).
pub async fn login(localpart: &str, device_name: &str) -> Result<Sdk> {
    let sdk = new_client().await?;
    sdk.client
        .matrix_auth()
        .login_username(localpart, PASSWORD)
        .initial_device_display_name(device_name)
        .await
        .with_context(|| format!("SDK login of {localpart}"))?;
    Ok(sdk)
}

/// Creates and uploads the user's cross-signing keys, answering the server's UIA with the password if
/// it asks for it (MSC3967 lets a server take the first upload without UIA).
pub async fn bootstrap_cross_signing(client: &Client, localpart: &str) -> Result<()> {
    match client.encryption().bootstrap_cross_signing(None).await {
        Ok(()) => Ok(()),
        Err(error) => {
            let Some(uiaa_info) = error.as_uiaa_response() else {
                return Err(anyhow!(error).context("bootstrap_cross_signing"));
            };
            let mut password = uiaa::Password::new(
                uiaa::UserIdentifier::Matrix(uiaa::MatrixUserIdentifier::new(localpart.to_owned())),
                PASSWORD.to_owned(),
            );
            password.session = uiaa_info.session.clone();
            client
                .encryption()
                .bootstrap_cross_signing(Some(uiaa::AuthData::Password(password)))
                .await
                .context("bootstrap_cross_signing with the password")
        }
    }
}

/// Starts the SDK's SyncService (room list sliding sync + encryption sliding sync), as Element X does.
pub async fn start_sync(client: &Client) -> Result<SyncService> {
    let sync_service = SyncService::builder(client.clone()).build().await?;
    sync_service.start().await;
    Ok(sync_service)
}

/// Polls `check` every 100 ms until it gives `Ok`, for at most `timeout`; its `Err` tells what it
/// sees instead, and the last one is in the error on timeout.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        match check().await {
            Ok(value) => {
                if started.elapsed() > Duration::from_secs(3) {
                    eprintln!("slow: {what} took {:?}", started.elapsed());
                }
                return Ok(value);
            }
            Err(seen) if Instant::now() >= deadline => {
                bail!("timed out after {timeout:?} waiting for {what}; last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Creates an encrypted room (m.megolm.v1.aes-sha2 in the initial state, trusted_private_chat, a DM
/// when `invite` holds one user) through the SDK, as Element X does.
pub async fn create_encrypted_room(
    client: &Client,
    name: &str,
    invite: &[&matrix_sdk::ruma::UserId],
) -> Result<matrix_sdk::Room> {
    use matrix_sdk::ruma::{
        api::client::room::create_room::v3::{Request, RoomPreset},
        events::{InitialStateEvent, room::encryption::RoomEncryptionEventContent},
    };
    let mut request = Request::new();
    request.name = Some(name.to_owned());
    request.invite = invite.iter().map(|u| (*u).to_owned()).collect();
    request.is_direct = invite.len() == 1;
    request.preset = Some(RoomPreset::TrustedPrivateChat);
    request.initial_state =
        vec![InitialStateEvent::with_empty_state_key(RoomEncryptionEventContent::with_recommended_defaults()).to_raw_any()];
    Ok(client.create_room(request).await?)
}

/// Joins `room_id` through the SDK once its invite has come down the sync.
pub async fn join_when_invited(client: &Client, room_id: &matrix_sdk::ruma::RoomId) -> Result<matrix_sdk::Room> {
    eventually("the invite in the SDK's sync", Duration::from_secs(30), || async {
        match client.get_room(room_id) {
            Some(room) if room.state() == matrix_sdk::RoomState::Invited => Ok(()),
            Some(room) => Err(format!("room state {:?}", room.state())),
            None => Err("room unknown".to_owned()),
        }
    })
    .await?;
    let room = client.join_room_by_id(room_id).await?;
    // The member list (GET /members), as Element X's timeline fetches it when the room opens: with
    // sliding sync's lazy members, the crypto only tracks (/keys/query) members it has seen.
    room.sync_members().await?;
    Ok(room)
}

/// Waits until `timeline` holds a message with `body` (so decrypted, if the room is encrypted);
/// returns the item.
pub async fn wait_for_message(
    timeline: &matrix_sdk_ui::Timeline,
    body: &str,
    timeout: Duration,
) -> Result<matrix_sdk_ui::timeline::EventTimelineItem> {
    eventually(&format!("the message {body:?} in the timeline"), timeout, || async {
        let items = timeline.items().await;
        items
            .iter()
            .filter_map(|i| i.as_event())
            .find(|e| e.content().as_message().is_some_and(|m| m.body() == body))
            .cloned()
            .ok_or_else(|| {
                let seen: Vec<String> = items
                    .iter()
                    .filter_map(|i| i.as_event())
                    .rev()
                    .take(8)
                    .map(|e| format!("{:?}", e.content()).chars().take(160).collect())
                    .collect();
                format!("last items (newest first): {seen:#?}")
            })
    })
    .await
}
