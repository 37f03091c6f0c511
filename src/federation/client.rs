//! The HTTPS transport of outgoing federation requests: one TLS connection per request (HTTP/1.1),
//! a time limit on the whole exchange and a size limit on the answer. No proxies, no redirects:
//! requests go only to the resolved destination.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName as TlsServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::discovery::Destination;

/// Largest answer accepted from another server.
pub const MAX_RESPONSE_BYTES: usize = 32 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    #[error("TLS with {0}: {1}")]
    Tls(String, String),
    #[error("HTTP with {0}: {1}")]
    Http(String, String),
    #[error("no answer from {0} in time")]
    Timeout(String),
}

pub struct Transport {
    tls: TlsConnector,
    timeout: Duration,
}

impl Transport {
    pub fn new(tls: rustls::ClientConfig, timeout: Duration) -> Self {
        Self { tls: TlsConnector::from(Arc::new(tls)), timeout }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `request` (its URI: path and query) to `dest` and reads the whole answer.
    pub async fn send(
        &self,
        dest: &Destination,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Bytes>, TransportError> {
        let what = format!("{}:{}", dest.host, dest.port);
        tokio::time::timeout(self.timeout, self.exchange(dest, request))
            .await
            .map_err(|_| TransportError::Timeout(what))?
    }

    async fn exchange(
        &self,
        dest: &Destination,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Bytes>, TransportError> {
        let what = format!("{}:{}", dest.host, dest.port);
        let tcp = TcpStream::connect((dest.host.as_str(), dest.port))
            .await
            .map_err(|e| TransportError::Connect(what.clone(), e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let name = TlsServerName::try_from(dest.tls_name.clone())
            .map_err(|_| TransportError::Resolve(dest.tls_name.clone()))?;
        let tls = self.tls.connect(name, tcp).await.map_err(|e| TransportError::Tls(what.clone(), e.to_string()))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| TransportError::Http(what.clone(), e.to_string()))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });

        let (mut parts, body) = request.into_parts();
        // Origin-form on the wire: the path and query that were signed.
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        parts.uri = path.parse().map_err(|e: http::uri::InvalidUri| TransportError::Http(what.clone(), e.to_string()))?;
        let host = http::HeaderValue::from_str(&dest.host_header)
            .map_err(|e| TransportError::Http(what.clone(), e.to_string()))?;
        parts.headers.insert(http::header::HOST, host);
        if !body.is_empty() && !parts.headers.contains_key(http::header::CONTENT_TYPE) {
            parts.headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        }
        parts.headers.insert(http::header::USER_AGENT, http::HeaderValue::from_static(concat!("Parvis/", env!("CARGO_PKG_VERSION"))));
        let request = http::Request::from_parts(parts, Full::new(Bytes::from(body)));

        let result = async {
            let response = sender.send_request(request).await.map_err(|e| TransportError::Http(what.clone(), e.to_string()))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| TransportError::Http(what.clone(), e.to_string()))?
                .to_bytes();
            Ok(http::Response::from_parts(parts, body))
        }
        .await;
        driver.abort();
        result
    }
}
