//! The HTTPS transport of outgoing federation requests: HTTP/1.1 over TLS, connections kept for
//! reuse per destination (`pool`), a time limit on the whole exchange and a size limit on the
//! answer. No proxies, no redirects: requests go only to the resolved destination, and only to
//! addresses `[network]` permits (`connector`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName as TlsServerName;
use tokio_rustls::TlsConnector;

use super::{
    connector::{ConnectError, Connector},
    discovery::Destination,
    pool::{Connection, Pool},
};

/// Largest answer accepted from another server.
pub const MAX_RESPONSE_BYTES: usize = 32 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    #[error("{0} is in a denied address range")]
    Denied(String),
    #[error("TLS with {0}: {1}")]
    Tls(String, String),
    #[error("HTTP with {0}: {1}")]
    Http(String, String),
    #[error("no answer from {0} in time")]
    Timeout(String),
}

impl From<ConnectError> for TransportError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Resolve(what) => TransportError::Resolve(what),
            ConnectError::Denied(what) => TransportError::Denied(what),
            ConnectError::Connect(what, why) => TransportError::Connect(what, why),
        }
    }
}

pub struct Transport {
    tls: TlsConnector,
    connector: Connector,
    timeout: Duration,
    pool: Pool,
    /// TLS connections opened so far (reused ones are not counted again).
    opened: AtomicU64,
}

impl Transport {
    pub fn new(tls: rustls::ClientConfig, timeout: Duration, connector: Connector) -> Self {
        Self {
            tls: TlsConnector::from(Arc::new(tls)),
            connector,
            timeout,
            pool: Pool::default(),
            opened: AtomicU64::new(0),
        }
    }

    /// Opens checked TCP connections (for the plain HTTP of push gateways too).
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// How many TLS connections this transport has opened.
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
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

    /// One exchange: on a pooled connection if one is idle (once more on a new connection if the
    /// pooled one turns out closed before answering), else on a new connection; the connection
    /// goes back to the pool when the answer was read whole and the server keeps it open.
    async fn exchange(
        &self,
        dest: &Destination,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Bytes>, TransportError> {
        let what = format!("{}:{}", dest.host, dest.port);
        let request = prepare(dest, request, &what)?;
        if let Some(connection) = self.pool.take(dest).await {
            match exchange_on(connection, clone_request(&request), &what).await {
                Ok((response, connection)) => {
                    self.keep(dest, &response, connection);
                    return Ok(response);
                }
                Err(e) => {
                    tracing::debug!("a kept connection to {what} failed ({e}); opening a new one")
                }
            }
        }
        let connection = self.connect(dest, &what).await?;
        let (response, connection) = exchange_on(connection, request, &what).await?;
        self.keep(dest, &response, connection);
        Ok(response)
    }

    fn keep(&self, dest: &Destination, response: &http::Response<Bytes>, connection: Connection) {
        let closing = response
            .headers()
            .get(http::header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if closing {
            connection.close();
        } else {
            self.pool.put(dest, connection);
        }
    }

    async fn connect(&self, dest: &Destination, what: &str) -> Result<Connection, TransportError> {
        let tcp = self.connector.connect(&dest.host, dest.port).await?;
        let _ = tcp.set_nodelay(true);
        let name = TlsServerName::try_from(dest.tls_name.clone())
            .map_err(|_| TransportError::Resolve(dest.tls_name.clone()))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| TransportError::Tls(what.to_owned(), e.to_string()))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| TransportError::Http(what.to_owned(), e.to_string()))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(Connection::new(sender, driver))
    }
}

/// The request as sent: origin-form URI (the path and query that were signed), `Host`, type, agent.
fn prepare(
    dest: &Destination,
    request: http::Request<Vec<u8>>,
    what: &str,
) -> Result<http::Request<Bytes>, TransportError> {
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = path
        .parse()
        .map_err(|e: http::uri::InvalidUri| TransportError::Http(what.to_owned(), e.to_string()))?;
    let host = http::HeaderValue::from_str(&dest.host_header)
        .map_err(|e| TransportError::Http(what.to_owned(), e.to_string()))?;
    parts.headers.insert(http::header::HOST, host);
    if !body.is_empty() && !parts.headers.contains_key(http::header::CONTENT_TYPE) {
        parts.headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
    }
    parts.headers.insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static(concat!("Parvis/", env!("CARGO_PKG_VERSION"))),
    );
    Ok(http::Request::from_parts(parts, Bytes::from(body)))
}

fn clone_request(request: &http::Request<Bytes>) -> http::Request<Bytes> {
    let mut copy = http::Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// Sends one request on `connection` and reads the whole answer; gives the connection back.
async fn exchange_on(
    mut connection: Connection,
    request: http::Request<Bytes>,
    what: &str,
) -> Result<(http::Response<Bytes>, Connection), TransportError> {
    let request = request.map(Full::new);
    let result = async {
        let response = connection
            .sender
            .send_request(request)
            .await
            .map_err(|e| TransportError::Http(what.to_owned(), e.to_string()))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| TransportError::Http(what.to_owned(), e.to_string()))?
            .to_bytes();
        Ok(http::Response::from_parts(parts, body))
    }
    .await;
    match result {
        Ok(response) => Ok((response, connection)),
        Err(e) => {
            connection.close();
            Err(e)
        }
    }
}
