//! Configuration: an embedded default, an optional TOML file, then `PARVIS_…` environment overrides.
//!
//! Nested keys are joined with a double underscore: `PARVIS_LISTEN__CLIENT=127.0.0.1:9000` sets
//! `[listen] client`. Values are read as TOML (numbers, booleans) and fall back to strings.

use std::{net::SocketAddr, path::PathBuf};

use ruma::{OwnedServerName, RoomVersionId};
use serde::Deserialize;

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
    pub log: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// Address of the client-server (and admin) HTTP listener.
    pub client: SocketAddr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Folder of the RocksDB database (created if missing).
    pub path: PathBuf,
    /// fsync the write-ahead log on every write (survives power loss, not only a process crash).
    pub sync_writes: bool,
    /// RocksDB block cache size in MiB.
    pub cache_mb: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationConfig {
    /// Whether anyone may register an account.
    pub enabled: bool,
    /// When non-empty, registration requires one of these tokens (`m.login.registration_token`).
    pub tokens: Vec<String>,
    /// Minimum password length.
    pub min_password_length: usize,
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest accepted request body in bytes.
    pub max_request_bytes: usize,
    /// Largest accepted `timeout` of a long-polling /sync, in milliseconds.
    pub max_sync_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server_name: "localhost:8008".try_into().expect("valid default server name"),
            listen: ListenConfig::default(),
            storage: StorageConfig::default(),
            registration: RegistrationConfig::default(),
            rooms: RoomsConfig::default(),
            rate_limits: RateLimitConfig::default(),
            limits: LimitsConfig::default(),
            log: "info".to_owned(),
        }
    }
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self { client: "127.0.0.1:8008".parse().expect("valid default address") }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self { path: PathBuf::from("./parvis-data"), sync_writes: false, cache_mb: 64 }
    }
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self { enabled: true, tokens: Vec::new(), min_password_length: 1 }
    }
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self { default_version: RoomVersionId::V12, allow_publish: true }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self { enabled: true, per_second: 200.0, burst: 1000.0 }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self { max_request_bytes: 1 << 20, max_sync_timeout_ms: 60_000 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads the configuration: defaults, then `file` if given, then the environment.
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                text.parse::<toml::Table>().map_err(|e| ConfigError::Invalid(e.to_string()))?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut table, env)?;
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, why: &str| Err(ConfigError::Invalid(format!("`{key}`: {why}")));
        if !crate::services::rooms::version::is_supported(&self.rooms.default_version) {
            return invalid("rooms.default_version", "unsupported room version");
        }
        if self.rate_limits.enabled && (self.rate_limits.per_second <= 0.0 || self.rate_limits.burst < 1.0) {
            return invalid("rate_limits", "per_second must be > 0 and burst >= 1");
        }
        if self.limits.max_request_bytes < 65_536 {
            return invalid("limits.max_request_bytes", "must be at least 65536 (one event)");
        }
        if self.storage.path.as_os_str().is_empty() {
            return invalid("storage.path", "must not be empty");
        }
        Ok(())
    }
}

/// The top-level keys of [`Config`]; environment variables naming others are ignored.
const TOP_LEVEL_KEYS: &[&str] =
    &["server_name", "listen", "storage", "registration", "rooms", "rate_limits", "limits", "log"];

fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (name, value) in env {
        let Some(path) = name.strip_prefix("PARVIS_") else { continue };
        if path.is_empty() {
            continue;
        }
        let keys: Vec<String> = path.split("__").map(str::to_lowercase).collect();
        // Other tools' PARVIS_* variables (PARVIS_BIN, PARVIS_PROFILE, …) are not configuration.
        if !TOP_LEVEL_KEYS.contains(&keys[0].as_str()) {
            continue;
        }
        let mut node = &mut *table;
        for key in &keys[..keys.len() - 1] {
            let entry = node.entry(key.clone()).or_insert_with(|| toml::Value::Table(Default::default()));
            node = entry.as_table_mut().ok_or_else(|| {
                ConfigError::Invalid(format!("`{name}`: `{key}` is not a section"))
            })?;
        }
        node.insert(keys[keys.len() - 1].clone(), parse_env_value(&value));
    }
    Ok(())
}

fn parse_env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
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
}
