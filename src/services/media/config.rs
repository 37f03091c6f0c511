//! The `[media]` section of the configuration.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Largest file a user may upload, in bytes (larger: 413 `M_TOO_LARGE`, nothing stored).
    pub max_upload_bytes: u64,
    /// Freeze the unauthenticated `/_matrix/media/v3/download|thumbnail` endpoints: media created
    /// (uploaded or fetched from another server) while this is on is served only on the
    /// authenticated endpoints; media created before stays readable on both.
    pub freeze_legacy: bool,
    /// How many `mxc://` URIs a user may hold created but not yet uploaded (`/media/v1/create`).
    pub max_pending_uploads: usize,
    /// How long a created `mxc://` URI waits for its upload (`unused_expires_at`), in seconds.
    pub unused_expiry_secs: u64,
    /// Largest `timeout_ms` honoured while waiting for an upload that has not happened yet.
    pub max_download_wait_ms: u64,
    /// Largest image (width × height) that is thumbnailed; larger: 413 `M_TOO_LARGE`.
    pub max_thumbnail_pixels: u64,
    /// Whether media of other servers is fetched over federation (and cached).
    pub fetch_remote: bool,
    /// Our media neither downloaded nor thumbnailed for this long is deleted (Synapse's
    /// `media_retention.local_media_lifetime`); protected media stays. Unset: kept forever.
    pub local_media_lifetime: Option<crate::services::retention::lifetime::Lifetime>,
    /// Other servers' cached media not read for this long is deleted (fetched again when asked).
    pub remote_media_lifetime: Option<crate::services::retention::lifetime::Lifetime>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 50 << 20,
            freeze_legacy: true,
            max_pending_uploads: 50,
            unused_expiry_secs: 24 * 3600,
            max_download_wait_ms: 60_000,
            max_thumbnail_pixels: 32 << 20,
            fetch_remote: true,
            local_media_lifetime: None,
            remote_media_lifetime: None,
        }
    }
}

impl MediaConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_upload_bytes == 0 {
            return Err("`media.max_upload_bytes`: must be at least 1".into());
        }
        if self.max_pending_uploads == 0 {
            return Err("`media.max_pending_uploads`: must be at least 1".into());
        }
        if self.unused_expiry_secs == 0 {
            return Err("`media.unused_expiry_secs`: must be at least 1".into());
        }
        if self.max_thumbnail_pixels == 0 {
            return Err("`media.max_thumbnail_pixels`: must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_overrides_and_bad_values() {
        let config = Config::load(None, env(&[])).unwrap();
        assert_eq!(config.media.max_upload_bytes, 50 << 20);
        assert!(config.media.freeze_legacy);
        let config = Config::load(
            None,
            env(&[
                ("PARVIS_MEDIA__MAX_UPLOAD_BYTES", "1000"),
                ("PARVIS_MEDIA__FREEZE_LEGACY", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(config.media.max_upload_bytes, 1000);
        assert!(!config.media.freeze_legacy);
        for (name, key) in [
            ("PARVIS_MEDIA__MAX_UPLOAD_BYTES", "media.max_upload_bytes"),
            (
                "PARVIS_MEDIA__MAX_PENDING_UPLOADS",
                "media.max_pending_uploads",
            ),
            (
                "PARVIS_MEDIA__UNUSED_EXPIRY_SECS",
                "media.unused_expiry_secs",
            ),
            (
                "PARVIS_MEDIA__MAX_THUMBNAIL_PIXELS",
                "media.max_thumbnail_pixels",
            ),
        ] {
            let err = Config::load(None, env(&[(name, "0")])).unwrap_err();
            assert!(err.to_string().contains(key), "{name}: {err}");
        }
        let err = Config::load(None, env(&[("PARVIS_MEDIA__NO_SUCH_KEY", "1")])).unwrap_err();
        assert!(err.to_string().contains("no_such_key"), "{err}");
    }

    #[test]
    fn the_example_configuration_shows_the_defaults() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/parvis.example.toml");
        let example = Config::load(Some(&path), env(&[])).unwrap().media;
        let default = Config::load(None, env(&[])).unwrap().media;
        assert_eq!(format!("{example:?}"), format!("{default:?}"));
    }
}
