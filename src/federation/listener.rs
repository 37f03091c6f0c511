//! The TLS federation listener: accepts connections, does the TLS handshake on its own task
//! (a slow peer never holds up the others) and serves HTTP/1.1 with the federation router.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::Router;
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tokio::{net::TcpListener, sync::oneshot, task::JoinSet};
use tokio_rustls::TlsAcceptor;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` over TLS on `listener` until `shutdown` fires; then drops open connections.
pub async fn serve(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    app: Router,
    mut shutdown: oneshot::Receiver<()>,
) {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!("federation listener: accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                connections.spawn(connection(acceptor.clone(), tcp, peer, app.clone()));
            }
        }
    }
    connections.abort_all();
}

async fn connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!("federation listener: TLS handshake with {peer}: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!("federation listener: TLS handshake with {peer} timed out");
            return;
        }
    };
    let service = TowerToHyperService::new(app);
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await
    {
        tracing::debug!("federation listener: connection with {peer}: {e}");
    }
}

/// The running federation listener.
pub struct FederationListener {
    pub addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl FederationListener {
    /// Binds `federation.listen` (port 0 picks a free port) with the configured or generated
    /// certificate, and serves the federation routes. None when federation is disabled.
    pub async fn start(
        services: &Arc<crate::services::Services>,
    ) -> crate::error::Result<Option<Self>> {
        use crate::error::Error;
        let config = services.config();
        if !config.federation.enabled {
            return Ok(None);
        }
        let tls_config = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || super::tls::server_config(&config))
                .await
                .map_err(|e| Error::internal(e.to_string()))?
                .map_err(Error::internal)?
        };
        let listen = config.federation.listen;
        let listener = TcpListener::bind(listen).await.map_err(|e| {
            Error::internal(format!(
                "cannot listen on {listen} (federation.listen): {e}"
            ))
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::internal(e.to_string()))?;
        services.federation.set_local_addr(addr);
        let app = crate::api::federation::router(services.clone());
        let (shutdown, rx) = oneshot::channel();
        let task = tokio::spawn(serve(listener, tls_config, app, rx));
        Ok(Some(Self {
            addr,
            shutdown,
            task,
        }))
    }

    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
    }
}
