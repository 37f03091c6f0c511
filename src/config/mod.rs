//! Configuration: an embedded default, an optional TOML file, then `PARVIS_…` environment overrides.
//!
//! Nested keys are joined with a double underscore: `PARVIS_LISTEN__CLIENT=127.0.0.1:9000` sets
//! `[listen] client`. Values are read as TOML (numbers, booleans) and fall back to strings.

use std::{net::SocketAddr, path::PathBuf};

use ruma::{OwnedServerName, RoomVersionId};
use serde::Deserialize;

mod sources;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The server name that appears in user ids, room aliases and event signatures.
    pub server_name: OwnedServerName,
    pub listen: ListenConfig,
    pub storage: StorageConfig,
    pub registration: RegistrationConfig,
    pub rooms: RoomsConfig,
    pub rate_limits: RateLimitConfig,
    pub limits: LimitsConfig,
    pub federation: FederationConfig,
    pub network: NetworkConfig,
    pub media: crate::services::media::config::MediaConfig,
    pub voip: crate::services::voip::VoipConfig,
    pub support: SupportConfig,
    pub appservices: crate::services::appservice::AppservicesConfig,
    pub webhooks: crate::services::webhooks::WebhooksConfig,
    pub backup: crate::services::backup::BackupConfig,
    pub metrics: crate::services::metrics::MetricsConfig,
    pub retention: crate::services::retention::RetentionConfig,
    pub server_notices: crate::services::server_notices::ServerNoticesConfig,
    pub sessions: crate::services::sessions::SessionsConfig,
    pub password_config: crate::services::sessions::password_policy::PasswordConfig,
    pub ldap: crate::services::ldap::LdapConfig,
    pub sso: crate::services::sso::SsoConfig,
    pub email: crate::services::email::EmailConfig,
    pub log: String,
}

/// Who to contact about this server (`/.well-known/matrix/support`). Nothing set: 404.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupportConfig {
    /// Contacts: `{ role = "m.role.admin" | "m.role.security" | other, matrix_id, email_address }`,
    /// each with a Matrix id or an email address (or both).
    pub contacts: Vec<SupportContact>,
    /// A web page where users get help.
    pub support_page: Option<String>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SupportContact {
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix_id: Option<ruma::OwnedUserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
}

/// Which addresses outgoing connections (federation, `.well-known`, SRV targets, media
/// `Location`s, push gateways, identity servers) may reach. Checked on the resolved addresses of
/// every connection, so a name that resolves to a denied address is refused too.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Address ranges (CIDR, or single addresses) never connected to. Default: loopback, RFC 1918,
    /// link-local, CGNAT, unique local, multicast, unspecified, documentation and other reserved
    /// ranges (as Synapse's `ip_range_blacklist`); IPv4-mapped IPv6 forms are matched as IPv4.
    pub deny_ranges: Vec<String>,
    /// Ranges allowed even when `deny_ranges` lists them (for example `127.0.0.1/32` for servers
    /// federating on loopback). Empty by default.
    pub allow_ranges: Vec<String>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            deny_ranges: crate::federation::ip_ranges::DEFAULT_DENY_RANGES
                .iter()
                .map(|r| (*r).to_owned())
                .collect(),
            allow_ranges: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// Address of the client-server (and admin) HTTP listener.
    pub client: SocketAddr,
    /// The URL clients use to reach the client-server API (behind a TLS proxy, usually
    /// `https://matrix.example.org`), announced in `/.well-known/matrix/client`. Unset:
    /// `http://<server_name>`.
    pub public_base_url: Option<String>,
    /// The header a reverse proxy in front of the client listener sets to the client's address
    /// (e.g. `X-Forwarded-For`; its last entry is used). Unset: the address of the TCP peer.
    /// Rate limits of unauthenticated requests are kept per client address.
    pub client_ip_header: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `rocksdb` (embedded, in `path`) or `postgres` (`[storage.postgres]`; `path` then keeps
    /// only the media files and exports).
    pub engine: EngineKind,
    pub postgres: crate::storage::postgres::PostgresConfig,
    /// Folder of the RocksDB database and of the media files (created if missing).
    pub path: PathBuf,
    /// fsync the write-ahead log on every write (survives power loss, not only a process crash).
    pub sync_writes: bool,
    /// RocksDB block cache size in MiB.
    pub cache_mb: usize,
    /// Memory for RocksDB's write buffers (memtables) of all column families together, in MiB.
    pub write_buffer_mb: usize,
    /// Folder of the media files; default `<path>/media`. The processes of a group
    /// (`postgres.shared`) set one folder on a filesystem they all mount.
    pub media_path: Option<PathBuf>,
}

impl StorageConfig {
    /// Where the media files are.
    pub fn media_dir(&self) -> PathBuf {
        self.media_path
            .clone()
            .unwrap_or_else(|| self.path.join("media"))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    #[default]
    Rocksdb,
    Postgres,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationConfig {
    /// Whether anyone may register an account.
    pub enabled: bool,
    /// When non-empty, registration requires one of these tokens (`m.login.registration_token`),
    /// or one made with the admin API; they never run out.
    pub tokens: Vec<String>,
    /// Registration requires a token (Synapse's `registration_requires_token`): one of `tokens`
    /// or one made with `/_synapse/admin/v1/registration_tokens`.
    pub requires_token: bool,
    /// Registration requires a validated e-mail address (`m.login.email.identity`; Synapse's
    /// `registrations_require_3pid: [email]`). Needs `[email] enabled`.
    pub require_email: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoomsConfig {
    /// Room version of new rooms when the client does not name one.
    pub default_version: RoomVersionId,
    /// Whether local users may publish rooms to the public room directory.
    pub allow_publish: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Sustained requests per second per user (or per IP address without a user) on rate-limited endpoints.
    pub per_second: f64,
    /// Requests allowed in a burst above the sustained rate.
    pub burst: f64,
    /// Failed logins of one account before each further attempt must wait (0: no delay).
    pub login_failures_before_delay: u32,
    /// The first wait after those failures, in milliseconds; it doubles with every further
    /// failure (at most 15 minutes). A successful login starts over.
    pub login_failure_delay_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest accepted request body in bytes.
    pub max_request_bytes: usize,
    /// Largest accepted `timeout` of a long-polling /sync, in milliseconds.
    pub max_sync_timeout_ms: u64,
    /// Threads that hash and verify passwords (Argon2id, 7 MiB each), apart from the pool
    /// database calls run on.
    pub password_hash_threads: usize,
    /// Password jobs that may wait for those threads; beyond, logins, registrations and
    /// password checks are answered 429 `M_LIMIT_EXCEEDED`.
    pub password_hash_queue: usize,
    /// To-device messages kept for one device until it syncs; beyond, new ones for it are dropped.
    pub max_pending_to_device: usize,
    /// State resolutions and auth-chain walks (work other servers cause) that run at once; the
    /// others wait.
    pub heavy_work_threads: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FederationConfig {
    /// Whether this server talks to other servers (the TLS listener and outgoing requests).
    pub enabled: bool,
    /// Address of the TLS federation listener (port 0 picks a free port).
    pub listen: SocketAddr,
    /// PEM certificate chain of the federation listener. Without it (and `tls_private_key`), a
    /// self-signed certificate is generated in the data folder, for development.
    pub tls_certificate: Option<PathBuf>,
    /// PEM private key of `tls_certificate`.
    pub tls_private_key: Option<PathBuf>,
    /// Verify the certificates of other servers. Turn off only in test setups.
    pub verify_certificates: bool,
    /// PEM files of extra certificate authorities trusted for outgoing federation.
    pub ca_files: Vec<PathBuf>,
    /// Lifetime of our published signing keys (`valid_until_ts` = now + this), in hours.
    pub key_validity_hours: u64,
    /// Time limit of one outgoing federation request (connect, TLS, answer), in seconds.
    pub request_timeout_secs: u64,
    /// What `/.well-known/matrix/server` answers (`host:port`). Default: the host of the server
    /// name with the port of the federation listener.
    pub well_known_server: Option<String>,
    /// Whether other servers may read our public room directory (`publicRooms`); when false they
    /// get 403 `M_FORBIDDEN`.
    pub public_rooms_over_federation: bool,
    /// Items (PDUs and EDUs) kept queued for a destination that does not answer; beyond it the
    /// oldest typing, receipt and presence EDUs are dropped (PDUs and other EDUs are kept).
    pub max_queued_per_destination: usize,
    /// Largest accepted request body on the federation listener, in bytes (a `/send` of 50 PDUs
    /// of 64 KiB and 100 EDUs must fit).
    pub max_request_bytes: usize,
    /// Shortest time between two fetches of one server's keys (`/_matrix/key/v2/server`), in
    /// seconds: an unknown key id or a notary query asks the server again only after it. A failed
    /// fetch is remembered for as long.
    pub key_fetch_interval_secs: u64,
    /// Join rooms of other servers with partial state (MSC3706: `send_join` with
    /// `omit_members=true`): the join is answered at once, the members are fetched after.
    pub partial_state_joins: bool,
    /// Wait this long (milliseconds) after a partial-state join before fetching the full state.
    /// For tests and diagnosis; 0 in production.
    pub partial_state_resync_delay_ms: u64,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:8448".parse().expect("valid default address"),
            tls_certificate: None,
            tls_private_key: None,
            verify_certificates: true,
            ca_files: Vec::new(),
            key_validity_hours: 24 * 7,
            request_timeout_secs: 30,
            well_known_server: None,
            public_rooms_over_federation: true,
            max_queued_per_destination: 10_000,
            max_request_bytes: 8 << 20,
            key_fetch_interval_secs: 30,
            partial_state_joins: true,
            partial_state_resync_delay_ms: 0,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server_name: "localhost:8008"
                .try_into()
                .expect("valid default server name"),
            listen: ListenConfig::default(),
            storage: StorageConfig::default(),
            registration: RegistrationConfig::default(),
            rooms: RoomsConfig::default(),
            rate_limits: RateLimitConfig::default(),
            limits: LimitsConfig::default(),
            federation: FederationConfig::default(),
            network: NetworkConfig::default(),
            media: Default::default(),
            voip: Default::default(),
            support: Default::default(),
            appservices: Default::default(),
            webhooks: Default::default(),
            backup: Default::default(),
            metrics: Default::default(),
            retention: Default::default(),
            server_notices: Default::default(),
            sessions: Default::default(),
            password_config: Default::default(),
            ldap: Default::default(),
            sso: Default::default(),
            email: Default::default(),
            log: "info".to_owned(),
        }
    }
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            client: "127.0.0.1:8008".parse().expect("valid default address"),
            public_base_url: None,
            client_ip_header: None,
        }
    }
}

impl Config {
    /// Whether the database exists, so that a command does not create an empty one: the RocksDB
    /// folder; a PostgreSQL schema is assumed (it is created on first use like the folder).
    pub fn has_database(&self) -> bool {
        match self.storage.engine {
            EngineKind::Rocksdb => self.storage.path.join("CURRENT").exists(),
            EngineKind::Postgres => true,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            engine: EngineKind::Rocksdb,
            postgres: Default::default(),
            path: PathBuf::from("./parvis-data"),
            sync_writes: false,
            cache_mb: 16,
            write_buffer_mb: 16,
            media_path: None,
        }
    }
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            tokens: Vec::new(),
            requires_token: false,
            require_email: false,
        }
    }
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self {
            default_version: RoomVersionId::V12,
            allow_publish: true,
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            per_second: 200.0,
            burst: 1000.0,
            login_failures_before_delay: 3,
            login_failure_delay_ms: 1000,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 1 << 20,
            max_sync_timeout_ms: 60_000,
            password_hash_threads: 2,
            password_hash_queue: 16,
            max_pending_to_device: 10_000,
            heavy_work_threads: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads the configuration: defaults, then `file` if given, then the environment. Every error
    /// names the key and where its value came from (the file's line or the variable).
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut sources = sources::Sources::read(file, env)?;
        let config: Config = sources.deserialize()?;
        config
            .validate()
            .map_err(|e| sources.locate_validation_error(e))?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, why: &str| Err(ConfigError::Invalid(format!("`{key}`: {why}")));
        if !crate::services::rooms::version::is_supported(&self.rooms.default_version) {
            return invalid("rooms.default_version", "unsupported room version");
        }
        if self.rate_limits.enabled
            && (self.rate_limits.per_second <= 0.0 || self.rate_limits.burst < 1.0)
        {
            return invalid("rate_limits", "per_second must be > 0 and burst >= 1");
        }
        if self.limits.password_hash_threads == 0 || self.limits.password_hash_threads > 64 {
            return invalid("limits.password_hash_threads", "must be between 1 and 64");
        }
        if self.limits.password_hash_queue > 10_000 {
            return invalid("limits.password_hash_queue", "must be at most 10000");
        }
        if self.limits.heavy_work_threads == 0 || self.limits.heavy_work_threads > 64 {
            return invalid("limits.heavy_work_threads", "must be between 1 and 64");
        }
        if self.limits.max_pending_to_device == 0 {
            return invalid("limits.max_pending_to_device", "must be at least 1");
        }
        if self
            .support
            .contacts
            .iter()
            .any(|c| c.matrix_id.is_none() && c.email_address.is_none())
        {
            return invalid(
                "support.contacts",
                "each contact needs a matrix_id or an email_address",
            );
        }
        if !self.voip.turn_uris.is_empty()
            && self.voip.turn_shared_secret.is_none()
            && (self.voip.turn_username.is_none() || self.voip.turn_password.is_none())
        {
            return invalid(
                "voip",
                "turn_uris need turn_shared_secret, or turn_username and turn_password",
            );
        }
        if let Some(header) = &self.listen.client_ip_header
            && http::HeaderName::from_bytes(header.as_bytes()).is_err()
        {
            return invalid("listen.client_ip_header", "must be a valid header name");
        }
        if self.limits.max_request_bytes < 65_536 {
            return invalid(
                "limits.max_request_bytes",
                "must be at least 65536 (one event)",
            );
        }
        if let Some(url) = &self.listen.public_base_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return invalid(
                "listen.public_base_url",
                "must start with https:// or http://",
            );
        }
        if self.storage.path.as_os_str().is_empty() {
            return invalid("storage.path", "must not be empty");
        }
        if self.storage.engine == EngineKind::Postgres {
            self.storage
                .postgres
                .check()
                .map_err(ConfigError::Invalid)?;
        }
        self.sso
            .check(self.listen.public_base_url.as_deref())
            .map_err(ConfigError::Invalid)?;
        self.email
            .check(self.listen.public_base_url.as_deref())
            .map_err(ConfigError::Invalid)?;
        if self.registration.require_email && !self.email.enabled {
            return invalid(
                "registration.require_email",
                "needs [email] enabled (the address is validated by mail)",
            );
        }
        self.media.validate().map_err(ConfigError::Invalid)?;
        self.retention.validate().map_err(ConfigError::Invalid)?;
        crate::federation::ip_ranges::AddressPolicy::from_config(&self.network)
            .map_err(ConfigError::Invalid)?;
        self.validate_federation()
    }

    fn validate_federation(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, why: String| {
            Err(ConfigError::Invalid(format!("`federation.{key}`: {why}")))
        };
        let f = &self.federation;
        match (&f.tls_certificate, &f.tls_private_key) {
            (Some(_), None) => {
                return invalid("tls_private_key", "must be set with tls_certificate".into());
            }
            (None, Some(_)) => {
                return invalid("tls_certificate", "must be set with tls_private_key".into());
            }
            _ => {}
        }
        for (key, path) in [
            ("tls_certificate", &f.tls_certificate),
            ("tls_private_key", &f.tls_private_key),
        ] {
            if let Some(path) = path
                && !path.is_file()
            {
                return invalid(key, format!("{} is not a readable file", path.display()));
            }
        }
        for path in &f.ca_files {
            if !path.is_file() {
                return invalid(
                    "ca_files",
                    format!("{} is not a readable file", path.display()),
                );
            }
        }
        if f.key_validity_hours == 0 || f.key_validity_hours > 24 * 365 {
            return invalid("key_validity_hours", "must be between 1 and 8760".into());
        }
        if f.request_timeout_secs == 0 {
            return invalid("request_timeout_secs", "must be at least 1".into());
        }
        if f.max_queued_per_destination == 0 {
            return invalid("max_queued_per_destination", "must be at least 1".into());
        }
        if f.max_request_bytes < 4 << 20 {
            return invalid(
                "max_request_bytes",
                "must be at least 4194304 (a transaction of 50 PDUs of 64 KiB)".into(),
            );
        }
        if let Some(delegated) = &f.well_known_server
            && (delegated.is_empty() || <&ruma::ServerName>::try_from(delegated.as_str()).is_err())
        {
            return invalid(
                "well_known_server",
                format!("`{delegated}` is not a host[:port]"),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid() {
        let config = Config::load(None, env(&[])).unwrap();
        assert_eq!(config.server_name.as_str(), "localhost:8008");
        assert_eq!(config.rooms.default_version, RoomVersionId::V12);
        assert!(config.registration.enabled);
    }

    #[test]
    fn environment_overrides_nested_keys() {
        let config = Config::load(
            None,
            env(&[
                ("PARVIS_LISTEN__CLIENT", "127.0.0.1:9999"),
                ("PARVIS_RATE_LIMITS__ENABLED", "false"),
                ("PARVIS_SERVER_NAME", "example.org"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(config.listen.client.port(), 9999);
        assert!(!config.rate_limits.enabled);
        assert_eq!(config.server_name.as_str(), "example.org");
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = Config::load(None, env(&[("PARVIS_LISTEN__CLIENT", "nowhere")])).unwrap_err();
        assert!(err.to_string().contains("client"), "{err}");
        let err = Config::load(None, env(&[("PARVIS_LISTEN__NO_SUCH_KEY", "1")])).unwrap_err();
        assert!(err.to_string().contains("no_such_key"), "{err}");
        // Variables of other tools are not configuration.
        Config::load(None, env(&[("PARVIS_BIN", "/x/parvis")])).unwrap();
        let err = Config::load(None, env(&[("PARVIS_ROOMS__DEFAULT_VERSION", "999")])).unwrap_err();
        assert!(err.to_string().contains("default_version"), "{err}");
    }

    #[test]
    fn variables_are_typed_by_their_setting() {
        let config = Config::load(
            None,
            env(&[
                ("PARVIS_ROOMS__DEFAULT_VERSION", "11"),
                ("PARVIS_SERVER_NAME", "1234"),
                ("PARVIS_LIMITS__MAX_SYNC_TIMEOUT_MS", "5000"),
            ]),
        )
        .unwrap();
        assert_eq!(config.rooms.default_version, RoomVersionId::V11);
        assert_eq!(config.server_name.as_str(), "1234");
        assert_eq!(config.limits.max_sync_timeout_ms, 5000);
        // A number that is not one names the variable.
        let err = Config::load(None, env(&[("PARVIS_LIMITS__MAX_SYNC_TIMEOUT_MS", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`limits.max_sync_timeout_ms`"), "{err}");
        assert!(err.contains("PARVIS_LIMITS__MAX_SYNC_TIMEOUT_MS"), "{err}");
        let err = Config::load(None, env(&[("PARVIS_LISTEN__NO_SUCH_KEY", "1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("PARVIS_LISTEN__NO_SUCH_KEY"), "{err}");
        let err = Config::load(None, env(&[("PARVIS_ROOMS__DEFAULT_VERSION", "999")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("PARVIS_ROOMS__DEFAULT_VERSION"), "{err}");
    }

    #[test]
    fn file_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("parvis.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Config::load(Some(&path), env(&[])).unwrap_err().to_string()
        };
        let err = load("server_name = \"x.org\"\n\n[limits]\nmax_sync_timeout_ms = \"soon\"\n");
        assert!(err.contains("`limits.max_sync_timeout_ms`"), "{err}");
        assert!(err.contains("parvis.toml line 4"), "{err}");
        let err = load("[listen]\nclient = \"127.0.0.1:1\"\nno_such_key = 1\n");
        assert!(err.contains("parvis.toml line 3"), "{err}");
        let err = load("[limits]\n\npassword_hash_threads = 0\n");
        assert!(err.contains("`limits.password_hash_threads` ("), "{err}");
        assert!(err.contains("line 3"), "{err}");
        let err = load("[limits\n");
        assert!(
            err.contains("parvis.toml") && err.contains("line 1"),
            "{err}"
        );
    }

    #[test]
    fn federation_defaults_and_overrides() {
        let config = Config::load(None, env(&[])).unwrap();
        assert!(config.federation.enabled);
        assert_eq!(config.federation.listen.port(), 8448);
        assert!(config.federation.verify_certificates);
        assert_eq!(config.federation.key_validity_hours, 168);
        assert!(config.federation.public_rooms_over_federation);
        let config = Config::load(
            None,
            env(&[
                ("PARVIS_FEDERATION__LISTEN", "127.0.0.1:0"),
                ("PARVIS_FEDERATION__VERIFY_CERTIFICATES", "false"),
                ("PARVIS_FEDERATION__KEY_VALIDITY_HOURS", "2"),
                (
                    "PARVIS_FEDERATION__WELL_KNOWN_SERVER",
                    "fed.example.org:443",
                ),
                ("PARVIS_FEDERATION__PUBLIC_ROOMS_OVER_FEDERATION", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(config.federation.listen.port(), 0);
        assert!(!config.federation.verify_certificates);
        assert_eq!(config.federation.key_validity_hours, 2);
        assert_eq!(
            config.federation.well_known_server.as_deref(),
            Some("fed.example.org:443")
        );
        assert!(!config.federation.public_rooms_over_federation);
    }

    #[test]
    fn network_ranges_from_the_environment() {
        let config = Config::load(None, env(&[])).unwrap();
        assert!(
            config
                .network
                .deny_ranges
                .iter()
                .any(|r| r == "127.0.0.0/8")
        );
        assert!(config.network.allow_ranges.is_empty());
        let config = Config::load(
            None,
            env(&[(
                "PARVIS_NETWORK__ALLOW_RANGES",
                "[\"127.0.0.0/8\", \"::1/128\"]",
            )]),
        )
        .unwrap();
        assert_eq!(
            config.network.allow_ranges,
            vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()]
        );
    }

    #[test]
    fn public_base_url_from_the_environment_and_checked() {
        let config = Config::load(
            None,
            env(&[(
                "PARVIS_LISTEN__PUBLIC_BASE_URL",
                "https://matrix.example.org",
            )]),
        )
        .unwrap();
        assert_eq!(
            config.listen.public_base_url.as_deref(),
            Some("https://matrix.example.org")
        );
        let err = Config::load(
            None,
            env(&[("PARVIS_LISTEN__PUBLIC_BASE_URL", "matrix.example.org")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("listen.public_base_url"), "{err}");
    }

    #[test]
    fn bad_federation_values_name_the_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("PARVIS_FEDERATION__LISTEN", "nowhere", "listen"),
            (
                "PARVIS_FEDERATION__KEY_VALIDITY_HOURS",
                "0",
                "federation.key_validity_hours",
            ),
            (
                "PARVIS_FEDERATION__TLS_CERTIFICATE",
                "/no/such/cert.pem",
                "federation.tls_private_key",
            ),
            (
                "PARVIS_FEDERATION__CA_FILES",
                "[\"/no/such/ca.pem\"]",
                "federation.ca_files",
            ),
            (
                "PARVIS_FEDERATION__VERIFY_CERTIFICATES",
                "maybe",
                "verify_certificates",
            ),
            (
                "PARVIS_FEDERATION__REQUEST_TIMEOUT_SECS",
                "0",
                "federation.request_timeout_secs",
            ),
            (
                "PARVIS_FEDERATION__MAX_QUEUED_PER_DESTINATION",
                "0",
                "federation.max_queued_per_destination",
            ),
            (
                "PARVIS_FEDERATION__WELL_KNOWN_SERVER",
                "not a host",
                "federation.well_known_server",
            ),
            (
                "PARVIS_FEDERATION__MAX_REQUEST_BYTES",
                "1048576",
                "federation.max_request_bytes",
            ),
            (
                "PARVIS_NETWORK__DENY_RANGES",
                "[\"10.0.0.0/33\"]",
                "network.deny_ranges",
            ),
            (
                "PARVIS_NETWORK__ALLOW_RANGES",
                "[\"not an address\"]",
                "network.allow_ranges",
            ),
        ];
        for (name, value, key) in cases {
            let err = Config::load(None, env(&[(name, value)])).unwrap_err();
            assert!(err.to_string().contains(key), "{name}={value}: {err}");
        }
        let both = Config::load(
            None,
            env(&[
                ("PARVIS_FEDERATION__TLS_CERTIFICATE", "/no/such/cert.pem"),
                ("PARVIS_FEDERATION__TLS_PRIVATE_KEY", "/no/such/key.pem"),
            ]),
        )
        .unwrap_err();
        assert!(
            both.to_string().contains("federation.tls_certificate"),
            "{both}"
        );
    }
}
