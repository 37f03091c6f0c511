//! The SMTP client (lettre): TLS from the start (`force_tls`), STARTTLS required
//! (`require_transport_security`), opportunistic (`enable_tls`) or none; certificates verified
//! against the public web roots and `ca_files`, never skipped. One connection per mail.

use std::time::Duration;

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
    transport::smtp::{
        authentication::Credentials,
        client::{Certificate, Tls, TlsParameters},
    },
};

use super::EmailConfig;

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    pub app_name: String,
}

impl Mailer {
    /// None when `[email]` is off; an error names the setting that is wrong.
    pub fn from_config(config: &EmailConfig) -> Result<Option<Self>, String> {
        if !config.enabled {
            return Ok(None);
        }
        let from: Mailbox = config
            .notif_from
            .parse()
            .map_err(|e| format!("email.notif_from: {e}"))?;
        let tls_name = config
            .tlsname
            .clone()
            .unwrap_or_else(|| config.smtp_host.clone());
        let mut parameters = TlsParameters::builder(tls_name);
        for file in &config.ca_files {
            let pem = std::fs::read(file)
                .map_err(|e| format!("email.ca_files: {}: {e}", file.display()))?;
            let certificate = Certificate::from_pem(&pem)
                .map_err(|e| format!("email.ca_files: {}: {e}", file.display()))?;
            parameters = parameters.add_root_certificate(certificate);
        }
        let parameters = parameters
            .build_rustls()
            .map_err(|e| format!("email: TLS settings: {e}"))?;
        let tls = if config.force_tls {
            Tls::Wrapper(parameters)
        } else if config.require_transport_security {
            Tls::Required(parameters)
        } else if config.enable_tls {
            Tls::Opportunistic(parameters)
        } else {
            Tls::None
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.smtp_host)
                .port(config.smtp_port)
                .tls(tls)
                .timeout(Some(Duration::from_millis(config.timeout.0)));
        if let (Some(user), Some(pass)) = (&config.smtp_user, &config.smtp_pass) {
            builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
        }
        Ok(Some(Self {
            transport: builder.build(),
            from,
            app_name: config.app_name.clone(),
        }))
    }

    /// Sends a plain-text mail to `to` (an address already checked by `threepids::canonical`).
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), String> {
        let to: Mailbox = to.parse().map_err(|e| format!("recipient: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| format!("message: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("SMTP: {e}"))
    }
}
