//! Servers that federate with each other over TLS on loopback: each is named after its federation
//! port (`127.0.0.1:<port>`), so peers find it without discovery, and accepts self-signed certificates.

use std::{path::Path, sync::Arc, time::Duration};

use parvis::{config::Config, services::Services};
use ruma::OwnedServerName;

use super::TestServer;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The configuration of a federating server on a fixed free port (kept across restarts).
pub fn fixed_config(dir: &Path) -> (Config, OwnedServerName) {
    let port = free_port();
    let mut config = super::config(dir);
    let name: OwnedServerName = format!("127.0.0.1:{port}").try_into().unwrap();
    config.server_name = name.clone();
    config.federation.listen = format!("127.0.0.1:{port}").parse().unwrap();
    config.federation.verify_certificates = false;
    (config, name)
}

/// A federating server; another port is tried when the one picked was taken meanwhile (tests run
/// in parallel).
pub async fn start(dir: &Path) -> (TestServer, OwnedServerName) {
    start_configured(dir, |_| ()).await
}

/// `start` with a change to the configuration.
pub async fn start_configured(
    dir: &Path,
    change: impl Fn(&mut Config),
) -> (TestServer, OwnedServerName) {
    for _ in 0..5 {
        let (mut config, name) = fixed_config(dir);
        change(&mut config);
        if let Ok(server) = parvis::server::start(config).await {
            let base = format!("http://{}", server.addr);
            return (
                TestServer {
                    server: Some(server),
                    base,
                    http: reqwest::Client::new(),
                },
                name,
            );
        }
    }
    panic!("no server could start");
}

pub fn services(server: &TestServer) -> Arc<Services> {
    server.server.as_ref().unwrap().services.clone()
}

/// Polls `check` until it gives a value (15 s at most).
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
