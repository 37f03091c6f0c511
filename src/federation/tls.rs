//! TLS for federation (rustls with the ring provider): the listener's certificate (from the
//! config, or self-signed and kept in the data folder) and the client's trust (webpki roots plus
//! `federation.ca_files`, or no verification at all when `verify_certificates = false`).

use std::{path::Path, sync::Arc};

use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature},
    pki_types::{
        CertificateDer, PrivateKeyDer, ServerName as TlsServerName, UnixTime, pem::PemObject,
    },
};

use crate::config::Config;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS configuration of the federation listener.
pub fn server_config(config: &Config) -> Result<ServerConfig, String> {
    let f = &config.federation;
    let (certs, key) = match (&f.tls_certificate, &f.tls_private_key) {
        (Some(cert), Some(key)) => (
            read_certs(cert).map_err(|e| format!("federation.tls_certificate: {e}"))?,
            PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("federation.tls_private_key: {}: {e}", key.display()))?,
        ),
        _ => self_signed_in(
            &config.storage.path.join("federation-tls"),
            config.server_name.as_str(),
        )?,
    };
    let mut server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("federation TLS certificate: {e}"))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(server)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

/// The development certificate: generated on first start, then read back from `dir`.
fn self_signed_in(
    dir: &Path,
    server_name: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if !cert_path.exists() || !key_path.exists() {
        let (cert, key) = self_signed(server_name)?;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::write(&key_path, key).map_err(|e| format!("{}: {e}", key_path.display()))?;
        std::fs::write(&cert_path, cert).map_err(|e| format!("{}: {e}", cert_path.display()))?;
        tracing::warn!(
            "federation: generated a self-signed certificate in {} (for development)",
            dir.display()
        );
    }
    let certs = read_certs(&cert_path)?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    Ok((certs, key))
}

/// A self-signed certificate (PEM) and its key (PEM) for the host of `server_name`, localhost
/// and the loopback addresses.
pub fn self_signed(server_name: &str) -> Result<(String, String), String> {
    let host = super::discovery::split_host_port(server_name).map_or(server_name, |(h, _)| h);
    let mut names = vec![host.to_owned()];
    for extra in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|n| n == extra) {
            names.push(extra.to_owned());
        }
    }
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("self-signed certificate: {e}"))?;
    Ok((certified.cert.pem(), certified.signing_key.serialize_pem()))
}

/// The TLS configuration of outgoing federation requests.
pub fn client_config(config: &Config) -> Result<ClientConfig, String> {
    let f = &config.federation;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut client = if f.verify_certificates {
        let roots = roots_with(&f.ca_files).map_err(|e| format!("federation.ca_files: {e}"))?;
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCertificateVerification(provider())))
            .with_no_client_auth()
    };
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(client)
}

/// The webpki roots and the certificates of `ca_files` (PEM).
fn roots_with(ca_files: &[std::path::PathBuf]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for path in ca_files {
        for cert in read_certs(path)? {
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(roots)
}

/// A verifying TLS client configuration (ring provider) trusting the webpki roots and
/// `ca_files`: for connections to servers the operator names (the LDAP directory).
pub fn verifying_client_config(ca_files: &[std::path::PathBuf]) -> Result<ClientConfig, String> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots_with(ca_files)?)
        .with_no_client_auth())
}

/// `verify_certificates = false`: any certificate is accepted (the handshake signature is still
/// checked). For test setups only.
#[derive(Debug)]
struct NoCertificateVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCertificateVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &TlsServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificate_is_kept_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("federation-tls");
        let (first, _) = self_signed_in(&tls, "a.test:8448").unwrap();
        let (second, _) = self_signed_in(&tls, "a.test:8448").unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn configs_build() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.storage.path = dir.path().to_owned();
        server_config(&config).unwrap();
        client_config(&config).unwrap();
        // The generated certificate as an extra CA.
        config.federation.ca_files = vec![dir.path().join("federation-tls/cert.pem")];
        client_config(&config).unwrap();
        config.federation.verify_certificates = false;
        client_config(&config).unwrap();
        // Configured files: a certificate that is not a certificate.
        std::fs::write(dir.path().join("bad.pem"), "nothing").unwrap();
        config.federation.tls_certificate = Some(dir.path().join("bad.pem"));
        config.federation.tls_private_key = Some(dir.path().join("federation-tls/key.pem"));
        let err = server_config(&config).unwrap_err();
        assert!(err.contains("federation.tls_certificate"), "{err}");
    }
}
