//! Where configuration values come from: the optional TOML file and `PARVIS_…` variables, merged
//! into one table, deserialized with the failing key's path, and every error named with its key
//! and origin (`config.toml line 12`, or `PARVIS_ROOMS__DEFAULT_VERSION`).
//!
//! A variable's value is read as TOML (numbers, booleans, arrays) when it parses as such. When the
//! setting it overrides wants a string, the raw text is used instead, so
//! `PARVIS_ROOMS__DEFAULT_VERSION=11` is the string "11": the variable is typed by its setting.

use std::path::{Path, PathBuf};

use super::{Config, ConfigError};

/// The top-level keys of [`Config`]; environment variables naming others are ignored, so other
/// tools' variables (PARVIS_BIN, PARVIS_PROFILE, …) are not configuration.
const TOP_LEVEL_KEYS: &[&str] = &[
    "server_name",
    "listen",
    "storage",
    "registration",
    "rooms",
    "rate_limits",
    "limits",
    "federation",
    "network",
    "media",
    "voip",
    "support",
    "appservices",
    "webhooks",
    "backup",
    "metrics",
    "retention",
    "server_notices",
    "sessions",
    "password_config",
    "ldap",
    "sso",
    "email",
    "log",
];

pub(super) struct Sources {
    table: toml::Table,
    file: Option<(PathBuf, String)>,
    env: Vec<EnvValue>,
}

struct EnvValue {
    variable: String,
    /// The dotted key it sets (`rooms.default_version`).
    key: String,
    raw: String,
}

impl Sources {
    pub(super) fn read(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let (mut table, file) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                let table = text.parse::<toml::Table>().map_err(|e| {
                    ConfigError::Invalid(format!("{}: {}", path.display(), e.to_string().trim()))
                })?;
                (table, Some((path.to_owned(), text)))
            }
            None => (toml::Table::new(), None),
        };
        let mut values = Vec::new();
        for (variable, raw) in env {
            let Some(path) = variable.strip_prefix("PARVIS_") else {
                continue;
            };
            let keys: Vec<String> = path.split("__").map(str::to_lowercase).collect();
            if keys.iter().any(String::is_empty) || !TOP_LEVEL_KEYS.contains(&keys[0].as_str()) {
                continue;
            }
            let mut node = &mut table;
            for key in &keys[..keys.len() - 1] {
                let entry = node
                    .entry(key.clone())
                    .or_insert_with(|| toml::Value::Table(Default::default()));
                node = entry.as_table_mut().ok_or_else(|| {
                    ConfigError::Invalid(format!("`{variable}`: `{key}` is not a section"))
                })?;
            }
            node.insert(keys[keys.len() - 1].clone(), typed_value(&raw));
            values.push(EnvValue {
                variable,
                key: keys.join("."),
                raw,
            });
        }
        Ok(Self {
            table,
            file,
            env: values,
        })
    }

    /// Deserializes the merged table. A variable whose typed value the setting refuses is tried
    /// once more as its raw text before the error is reported.
    pub(super) fn deserialize(&mut self) -> Result<Config, ConfigError> {
        let mut retried = vec![false; self.env.len()];
        loop {
            let value = toml::Value::Table(self.table.clone());
            let error = match serde_path_to_error::deserialize::<_, Config>(value) {
                Ok(config) => return Ok(config),
                Err(error) => error,
            };
            let key = error.path().to_string();
            let retry = self.env.iter().position(|v| v.key == key).filter(|&i| {
                !retried[i] && !matches!(self.get(&self.env[i].key), Some(toml::Value::String(_)))
            });
            if let Some(i) = retry {
                retried[i] = true;
                let raw = toml::Value::String(self.env[i].raw.clone());
                self.set(&self.env[i].key.clone(), raw);
                continue;
            }
            // toml adds "in `section`" on a second line: the key is said first instead.
            let message = error.into_inner().to_string();
            let message = message.lines().next().unwrap_or_default().trim();
            return Err(ConfigError::Invalid(match self.origin(&key, message) {
                Some(origin) if key != "." => format!("`{key}` ({origin}): {message}"),
                Some(origin) => format!("{origin}: {message}"),
                None if key != "." => format!("`{key}`: {message}"),
                None => message.to_owned(),
            }));
        }
    }

    /// Adds the origin to a validation error of the form "`key`: why".
    pub(super) fn locate_validation_error(&self, error: ConfigError) -> ConfigError {
        let ConfigError::Invalid(message) = &error else {
            return error;
        };
        let Some(key) = message
            .strip_prefix('`')
            .and_then(|rest| rest.split_once('`'))
            .map(|(key, _)| key)
        else {
            return error;
        };
        match self.origin(key, message) {
            Some(origin) => {
                let why = &message[key.len() + 2..];
                ConfigError::Invalid(format!("`{key}` ({origin}){why}"))
            }
            None => error,
        }
    }

    /// Where the value at `key` (or, for a section, a value under it that `message` names) came
    /// from. Variables override the file, so they are looked at first.
    fn origin(&self, key: &str, message: &str) -> Option<String> {
        let under = |v: &&EnvValue| {
            key == "."
                || v.key == key
                || (v.key.starts_with(key) && v.key.as_bytes().get(key.len()) == Some(&b'.'))
        };
        let mut candidates = self.env.iter().filter(under).collect::<Vec<_>>();
        if candidates.len() > 1 {
            // An unknown field: the message names the leaf.
            let named: Vec<_> = candidates
                .iter()
                .copied()
                .filter(|v| {
                    let leaf = v.key.rsplit('.').next().unwrap_or_default();
                    message.contains(&format!("`{leaf}`"))
                })
                .collect();
            if !named.is_empty() {
                candidates = named;
            }
        }
        if let Some(value) = candidates.last() {
            return Some(format!("from {}", value.variable));
        }
        let (path, text) = self.file.as_ref()?;
        let line = file_line(text, key).or_else(|| {
            // An unknown field in the file: `section.<the field the message names>`.
            let leaf = message.split('`').nth(1)?;
            let nested = if key == "." {
                leaf.to_owned()
            } else {
                format!("{key}.{leaf}")
            };
            file_line(text, &nested)
        })?;
        Some(format!("{} line {line}", path.display()))
    }

    fn get(&self, key: &str) -> Option<&toml::Value> {
        let mut parts = key.split('.');
        let mut value = self.table.get(parts.next()?)?;
        for part in parts {
            value = value.as_table()?.get(part)?;
        }
        Some(value)
    }

    fn set(&mut self, key: &str, new: toml::Value) {
        let parts: Vec<&str> = key.split('.').collect();
        let mut table = &mut self.table;
        for part in &parts[..parts.len() - 1] {
            match table.get_mut(*part).and_then(toml::Value::as_table_mut) {
                Some(next) => table = next,
                None => return,
            }
        }
        table.insert(parts[parts.len() - 1].to_owned(), new);
    }
}

/// A variable's value as TOML when it parses as one, else as a string.
fn typed_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

/// The 1-based line of the dotted `key` (with `[n]` array indexes, as serde_path_to_error writes
/// them) in the TOML `text`.
fn file_line(text: &str, key: &str) -> Option<usize> {
    use toml_edit::TableLike;
    let document = toml_edit::ImDocument::parse(text).ok()?;
    let mut table: &dyn TableLike = document.as_table();
    let mut span = None;
    let parts: Vec<&str> = key.split('.').collect();
    for (n, part) in parts.iter().enumerate() {
        let (name, index) = match part.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (*part, None),
        };
        let (found, item) = table.get_key_value(name)?;
        span = found.span().or(span);
        let item = match index {
            None => item,
            Some(i) => match item {
                toml_edit::Item::ArrayOfTables(tables) => {
                    let t = tables.get(i)?;
                    span = t.span().or(span);
                    if n + 1 == parts.len() {
                        break;
                    }
                    table = t;
                    continue;
                }
                toml_edit::Item::Value(toml_edit::Value::Array(array)) => {
                    let element = array.get(i)?;
                    span = element.span().or(span);
                    match element.as_inline_table() {
                        Some(t) if n + 1 < parts.len() => {
                            table = t;
                            continue;
                        }
                        _ => break,
                    }
                }
                _ => return None,
            },
        };
        if n + 1 < parts.len() {
            table = item.as_table_like()?;
        }
    }
    let start = span?.start;
    Some(text[..start].matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_keys() {
        let text = "server_name = \"a\"\n\n[rooms]\ndefault_version = 11\n\n[[support.contacts]]\nrole = \"x\"\n";
        assert_eq!(file_line(text, "server_name"), Some(1));
        assert_eq!(file_line(text, "rooms.default_version"), Some(4));
        assert_eq!(file_line(text, "support.contacts[0].role"), Some(7));
        assert_eq!(file_line(text, "rooms.nothing"), None);
    }
}
