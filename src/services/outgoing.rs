//! HTTP(S) requests to URLs the server was given (push gateways, application services): `https`
//! through the federation transport's TLS, `http` as one plain HTTP/1.1 exchange; both connect
//! with the transport's connector, so an address in a denied range (`[network]`) is never reached
//! (`TransportError::Denied`).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

use crate::{
    federation::{client::TransportError, discovery::Destination},
    services::Services,
};

/// Largest answer read.
const MAX_ANSWER_BYTES: usize = 64 << 10;

/// Sends `request` (its URI: the path and query) to the host of `uri`, within `timeout`.
pub async fn send(
    s: &Services,
    uri: &http::Uri,
    request: http::Request<Vec<u8>>,
    timeout: Duration,
) -> Result<http::Response<Bytes>, TransportError> {
    let https = uri.scheme_str() == Some("https");
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_else(|| host.clone());
    if https {
        let dest = Destination {
            host: host.clone(),
            port,
            host_header: authority,
            tls_name: host,
        };
        s.federation.transport.send(&dest, request).await
    } else {
        match tokio::time::timeout(timeout, plain_http(s, &host, port, &authority, request)).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout(authority)),
        }
    }
}

/// One plain HTTP/1.1 exchange.
async fn plain_http(
    s: &Services,
    host: &str,
    port: u16,
    authority: &str,
    request: http::Request<Vec<u8>>,
) -> Result<http::Response<Bytes>, TransportError> {
    let tcp = s
        .federation
        .transport
        .connector()
        .connect(host, port)
        .await?;
    let _ = tcp.set_nodelay(true);
    let failed = |e: String| TransportError::Http(authority.to_owned(), e);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| failed(e.to_string()))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let (mut parts, body) = request.into_parts();
    let host_header = http::HeaderValue::from_str(authority).map_err(|e| failed(e.to_string()))?;
    parts.headers.insert(http::header::HOST, host_header);
    parts.headers.insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static(concat!("Parvis/", env!("CARGO_PKG_VERSION"))),
    );
    let request = http::Request::from_parts(parts, Full::new(Bytes::from(body)));
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| failed(e.to_string()))?
            .to_bytes();
        Ok(http::Response::from_parts(parts, body))
    }
    .await;
    driver.abort();
    result
}
