//! E-mail (`[email]`, the ideas of Synapse's `email` section): the SMTP settings and the mailer
//! that sends validation links and password resets. Third-party identifiers themselves are
//! `services::threepids`.

pub mod mailer;

use std::path::PathBuf;

use serde::Deserialize;

use crate::services::retention::lifetime::Lifetime;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// Send e-mail (and so offer e-mail addresses on accounts, e-mail registration and password
    /// resets).
    pub enabled: bool,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_user: Option<String>,
    pub smtp_pass: Option<String>,
    /// TLS from the first byte (SMTPS, usually port 465).
    pub force_tls: bool,
    /// Upgrade with STARTTLS when the server offers it.
    pub enable_tls: bool,
    /// Refuse to send unless the connection is upgraded with STARTTLS (or `force_tls`): no
    /// credentials or mail in clear text.
    pub require_transport_security: bool,
    /// The name the server's certificate must carry (default: `smtp_host`).
    pub tlsname: Option<String>,
    /// PEM files of CAs that sign the SMTP server's certificate (besides the public web roots).
    pub ca_files: Vec<PathBuf>,
    /// The sender: `Example Chat <noreply@example.com>`.
    pub notif_from: String,
    /// The name in the mails' text.
    pub app_name: String,
    /// How long a validation link works.
    pub validation_token_lifetime: Lifetime,
    /// Each SMTP exchange.
    pub timeout: Lifetime,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            smtp_host: "localhost".to_owned(),
            smtp_port: 25,
            smtp_user: None,
            smtp_pass: None,
            force_tls: false,
            enable_tls: true,
            require_transport_security: false,
            tlsname: None,
            ca_files: Vec::new(),
            notif_from: String::new(),
            app_name: "Matrix".to_owned(),
            validation_token_lifetime: Lifetime(3_600_000),
            timeout: Lifetime(30_000),
        }
    }
}

impl EmailConfig {
    /// The configuration's mistakes, each naming its setting.
    pub fn check(&self, public_base_url: Option<&str>) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        if public_base_url.is_none() {
            return Err(
                "email.enabled: set listen.public_base_url (the validation links point to it)"
                    .to_owned(),
            );
        }
        if self.notif_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(format!(
                "email.notif_from: `{}` is not an address like `Example Chat <noreply@example.com>`",
                self.notif_from
            ));
        }
        if self.smtp_user.is_some() != self.smtp_pass.is_some() {
            return Err("email.smtp_user and email.smtp_pass: set both or neither".to_owned());
        }
        if self.force_tls && self.require_transport_security {
            return Err(
                "email.require_transport_security: STARTTLS does not apply with force_tls"
                    .to_owned(),
            );
        }
        Ok(())
    }
}
