//! Starting and stopping a server: open the database, bind the listener, serve until a signal.

use std::{net::SocketAddr, sync::Arc};

use tokio::net::TcpListener;

use crate::{api, config::Config, error::Result, services::Services};

/// A running server (used by `main` and by tests, which run several in one process).
pub struct RunningServer {
    pub services: Arc<Services>,
    pub addr: SocketAddr,
    /// The address of the TLS federation listener (None when federation is disabled).
    pub federation_addr: Option<SocketAddr>,
    federation: Option<crate::federation::listener::FederationListener>,
    sender: Option<(
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    )>,
    push: (
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ),
    search_rebuild: (
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ),
    time_index_rebuild: (
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ),
    to_device_prune: (
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ),
    /// One transaction sender per application service (queued events survive restarts).
    appservice_senders: (
        tokio::sync::watch::Sender<bool>,
        Vec<tokio::task::JoinHandle<()>>,
    ),
    /// The integration user's command worker (queued commands survive restarts).
    integration_bot: (
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ),
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
        if let Some(federation) = self.federation {
            federation.stop().await;
        }
        if let Some((stop, task)) = self.sender {
            let _ = stop.send(true);
            let _ = task.await;
        }
        let _ = self.push.0.send(true);
        let _ = self.push.1.await;
        let _ = self.search_rebuild.0.send(true);
        let _ = self.search_rebuild.1.await;
        let _ = self.time_index_rebuild.0.send(true);
        let _ = self.time_index_rebuild.1.await;
        let _ = self.to_device_prune.0.send(true);
        let _ = self.to_device_prune.1.await;
        let _ = self.appservice_senders.0.send(true);
        for task in self.appservice_senders.1 {
            let _ = task.await;
        }
        let _ = self.integration_bot.0.send(true);
        let _ = self.integration_bot.1.await;
        let services = self.services.clone();
        let _ = tokio::task::spawn_blocking(move || services.shutdown()).await;
    }
}

/// Opens the database and starts serving on the configured address (port 0 picks a free one).
pub async fn start(config: Config) -> Result<RunningServer> {
    let addr = config.listen.client;
    let services = tokio::task::spawn_blocking(move || {
        let services = Services::open(config)?;
        crate::api::appservice_auth::ensure_sender_users(&services)?;
        crate::services::webhooks::bot::ensure_user(&services)?;
        services.appservices.count_queued(&services)?;
        Ok::<_, crate::error::Error>(services)
    })
    .await
    .map_err(|e| crate::error::Error::internal(e.to_string()))??;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| crate::error::Error::internal(format!("cannot listen on {addr}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| crate::error::Error::internal(e.to_string()))?;
    let federation = crate::federation::listener::FederationListener::start(&services).await?;
    let federation_addr = federation.as_ref().map(|f| f.addr);
    // The federation sending workers (queued items of every destination survive restarts).
    let sender = match (
        services.config().federation.enabled,
        services.federation.sender.take_receiver(),
    ) {
        (true, Some(rx)) => {
            let (stop, stop_rx) = tokio::sync::watch::channel(false);
            let prune = tokio::spawn(crate::federation::incoming::txn_expiry::prune_periodically(
                services.clone(),
                stop_rx.clone(),
            ));
            let supervise =
                crate::federation::sender::worker::supervise(services.clone(), rx, stop_rx);
            let task = tokio::spawn(async move {
                supervise.await;
                let _ = prune.await;
            });
            Some((stop, task))
        }
        _ => None,
    };
    // Push rule evaluation and gateway delivery (pending work survives restarts).
    let push = {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        (
            stop,
            crate::services::push::worker::spawn(services.clone(), stop_rx),
        )
    };
    // Indexing for search of events stored before the index existed (resumable, in the background).
    let search_rebuild = {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        (
            stop,
            crate::services::search::rebuild::spawn(services.clone(), stop_rx),
        )
    };
    // Indexing by time (jump to date) of events stored before the index existed.
    let time_index_rebuild = {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        (
            stop,
            crate::services::time_index::rebuild::spawn(services.clone(), stop_rx),
        )
    };
    // Forgetting to-device transaction ids older than a day (at start and hourly).
    let to_device_prune = {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        (
            stop,
            tokio::spawn(crate::services::to_device::prune_periodically(
                services.clone(),
                stop_rx,
            )),
        )
    };
    let appservice_senders = {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        (
            stop,
            crate::services::appservice::sender::spawn(services.clone(), stop_rx),
        )
    };
    let integration_bot = {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        (
            stop,
            crate::services::webhooks::bot::spawn(services.clone(), stop_rx),
        )
    };
    let app = api::router(services.clone());
    let (shutdown, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // Answers are small and latency matters (long-polls): no Nagle delay.
        let listener =
            axum::serve::ListenerExt::tap_io(listener, |stream: &mut tokio::net::TcpStream| {
                let _ = stream.set_nodelay(true);
            });
        let serve = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            tracing::error!("server error: {e}");
        }
    });
    Ok(RunningServer {
        services,
        addr,
        federation_addr,
        federation,
        sender,
        push,
        search_rebuild,
        time_index_rebuild,
        to_device_prune,
        appservice_senders,
        integration_bot,
        shutdown,
        task,
    })
}

/// The tokio runtime the server runs on: database work (`Services::run`) shares a blocking pool of
/// 8 threads; password hashing has its own threads (`services::password_pool`). Tests that
/// measure behaviour under load build the same runtime.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(8)
        .build()
}

/// Runs until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
    let server_name = config.server_name.clone();
    let server = start(config).await?;
    tracing::info!(
        "Parvis {} serving {} on http://{}",
        env!("CARGO_PKG_VERSION"),
        server_name,
        server.addr
    );
    if let Some(federation) = server.federation_addr {
        tracing::info!("federation on https://{federation}");
    }
    wait_for_signal().await;
    tracing::info!("shutting down");
    server.stop().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
