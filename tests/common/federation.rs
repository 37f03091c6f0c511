//! Servers that federate with each other over TLS on loopback: each is named after its federation
//! port (`127.0.0.1:<port>`), so peers find it without discovery, and accepts self-signed certificates.

use std::{path::Path, sync::Arc, time::Duration};

use parvis::{config::Config, services::Services};
use ruma::OwnedServerName;

use super::TestServer;

/// A port nobody listens on now, for a server that must know its own port before it starts.
///
/// Ports come from 20000–32767, below the kernel's ephemeral range (32768 and up): an outgoing
/// connection (to PostgreSQL, say) or a listener on port 0 is never given one between this call
/// and the bind that follows it. Each call in a process takes the next port after the last.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_768;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7_919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000–32767")
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

/// A hand-made server (a federation peer, an identity server): `app` served over TLS on a loopback port, named after its
/// address (its name, the sender that stops it, and the folder of its certificate).
pub async fn fake_peer(
    app: axum::Router,
) -> (String, tokio::sync::oneshot::Sender<()>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let tls = parvis::federation::tls::server_config(&super::config(dir.path())).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let name = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(parvis::federation::listener::serve(
        listener, tls, app, stopped,
    ));
    (name, stop, dir)
}
