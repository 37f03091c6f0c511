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
    /// The address of the metrics listener (None unless `[metrics] listen` is set).
    pub metrics_addr: Option<SocketAddr>,
    federation: Option<crate::federation::listener::FederationListener>,
    /// Background workers (federation sending, push, index rebuilds, pruning, application service
    /// senders, the integration bot, the control socket), stopped in this order.
    workers: Vec<Worker>,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// A background task and the switch that stops it.
struct Worker {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Worker {
    fn spawn(
        start: impl FnOnce(tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()>,
    ) -> Self {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        Self {
            stop,
            tasks: vec![start(stop_rx)],
        }
    }
}

impl RunningServer {
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
        if let Some(federation) = self.federation {
            federation.stop().await;
        }
        for worker in self.workers {
            let _ = worker.stop.send(true);
            for task in worker.tasks {
                let _ = task.await;
            }
        }
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
        crate::services::server_notices::ensure_user(&services)?;
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
    let mut workers = Vec::new();
    // In a group of processes: catching up with the others' commits and invalidations.
    let s = services.clone();
    workers.push(Worker::spawn(|stop| {
        crate::services::cluster::spawn(s, stop)
    }));
    // The work done once per homeserver, on the process that holds the background lease (any
    // process alone on its database).
    let s = services.clone();
    workers.push(Worker::spawn(|stop| tokio::spawn(background(s, stop))));
    // The metrics listener.
    let metrics_addr = match api::metrics::start(&services).await? {
        Some((addr, stop, task)) => {
            workers.push(Worker {
                stop,
                tasks: vec![task],
            });
            Some(addr)
        }
        None => None,
    };
    // The control socket of `parvis backup`.
    let s = services.clone();
    workers.push(Worker::spawn(|stop| api::control::spawn(s, stop)));
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
        metrics_addr,
        federation,
        workers,
        shutdown,
        task,
    })
}

/// The tokio runtime the server runs on: database work (`Services::run`) shares a blocking pool of
/// 8 threads; password hashing has its own threads (`services::password_pool`). Tests that
/// measure behaviour under load build the same runtime. A blocking thread idle for a second
/// ends (tokio's default: ten): mimalloc keeps the pages a thread freed until that thread
/// allocates again, so idle threads held a third of the heap after a burst (bench/README.md,
/// "Memory after a burst").
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    const BLOCKING_THREAD_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(1);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(8)
        .thread_keep_alive(BLOCKING_THREAD_KEEP_ALIVE)
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

/// Background work done once per homeserver: started when this process holds the lease
/// (`services::cluster::lease`; at once for a process alone on its database), stopped with the
/// server, or when the lease is lost (another process then runs it). Until then, wake-ups for the
/// federation sender are dropped: the process that runs it finds queued work in the database.
async fn background(services: Arc<Services>, mut stop: tokio::sync::watch::Receiver<bool>) {
    use crate::services::cluster::lease;
    let mut federation_wakes = if services.config().federation.enabled {
        services.federation.sender.take_receiver()
    } else {
        None
    };
    let holder = lease::Holder::new();
    loop {
        let attempt = holder.clone();
        match services.run(move |s| attempt.acquire(s)).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!("the background lease: {}", e.message),
        }
        let retry = tokio::time::Instant::now() + lease::RETRY;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(retry) => break,
                _ = stop.changed() => return,
                Some(_) = async {
                    match federation_wakes.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
        }
    }
    if services.globals.shared() {
        tracing::info!(
            "this process runs the background work (lease {})",
            holder.id()
        );
    }
    services.globals.set_background_here(true);
    let workers = start_background(&services, federation_wakes);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(lease::RENEW) => {}
            _ = stop.changed() => break,
        }
        let renewal = holder.clone();
        match services.run(move |s| renewal.acquire(s)).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(
                    "another process took the background lease: background work stops here"
                );
                break;
            }
            Err(e) => tracing::warn!("renewing the background lease: {}", e.message),
        }
    }
    services.globals.set_background_here(false);
    for worker in workers {
        let _ = worker.stop.send(true);
        for task in worker.tasks {
            let _ = task.await;
        }
    }
    let release = holder.clone();
    let _ = services.run(move |s| release.release(s)).await;
}

/// Starts the background workers (see [`background`]).
fn start_background(
    services: &Arc<Services>,
    federation_wakes: Option<tokio::sync::mpsc::UnboundedReceiver<crate::federation::sender::Wake>>,
) -> Vec<Worker> {
    let mut workers = Vec::new();
    // The federation sending workers (queued items of every destination survive restarts).
    if let Some(rx) = federation_wakes {
        let s = services.clone();
        workers.push(Worker::spawn(move |stop| {
            let prune = tokio::spawn(crate::federation::incoming::txn_expiry::prune_periodically(
                s.clone(),
                stop.clone(),
            ));
            let supervise = crate::federation::sender::worker::supervise(s, rx, stop);
            tokio::spawn(async move {
                supervise.await;
                let _ = prune.await;
            })
        }));
    }
    // The full state of rooms joined with partial state (a restart resumes it).
    let s = services.clone();
    workers.push(Worker::spawn(|stop| {
        crate::federation::join::resync::spawn(s, stop)
    }));
    // Push rule evaluation and gateway delivery (pending work survives restarts).
    let s = services.clone();
    workers.push(Worker::spawn(|stop| {
        crate::services::push::worker::spawn(s, stop)
    }));
    // Indexing for search of events stored before the index existed (resumable, in the background).
    let s = services.clone();
    workers.push(Worker::spawn(|stop| {
        crate::services::search::rebuild::spawn(s, stop)
    }));
    // Indexing by time (jump to date) of events stored before the index existed.
    let s = services.clone();
    workers.push(Worker::spawn(|stop| {
        crate::services::time_index::rebuild::spawn(s, stop)
    }));
    // Forgetting to-device transaction ids older than a day (at start and hourly).
    let s = services.clone();
    workers.push(Worker::spawn(|stop| {
        tokio::spawn(crate::services::to_device::prune_periodically(s, stop))
    }));
    // One transaction sender per application service (queued events survive restarts).
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    workers.push(Worker {
        stop,
        tasks: crate::services::appservice::sender::spawn(services.clone(), stop_rx),
    });
    // The integration user's command worker (queued commands survive restarts).
    let s = services.clone();
    workers.push(Worker::spawn(|stop| {
        crate::services::webhooks::bot::spawn(s, stop)
    }));
    // Retention purge jobs (interrupted ones resume).
    let s = services.clone();
    workers.push(Worker::spawn(|stop| {
        crate::services::retention::worker::spawn(s, stop)
    }));
    // Media retention (`[media] local_media_lifetime`, `remote_media_lifetime`).
    let s = services.clone();
    workers.push(Worker::spawn(|stop| {
        crate::services::media::retention::spawn(s, stop)
    }));
    // Erasing the originals of redacted events after `[retention] redaction_retention_period`.
    let s = services.clone();
    workers.push(Worker::spawn(|stop| {
        crate::services::timeline::redacted_originals::spawn(s, stop)
    }));
    // Locking or deactivating accounts of users who left the LDAP directory.
    let s = services.clone();
    workers.push(Worker::spawn(|stop| {
        crate::services::ldap::departures::spawn(s, stop)
    }));
    // Deleting expired login tokens and e-mail validation sessions.
    let s = services.clone();
    workers.push(Worker::spawn(|stop| {
        crate::services::sessions::spawn_sweeps(s, stop)
    }));
    // Handing the C heap's free pages (RocksDB's) back to the system.
    let s = services.clone();
    workers.push(Worker::spawn(|stop| {
        crate::services::c_heap::spawn_trim(s, stop)
    }));
    // In a group: ending timed-out typing notifications for every process.
    let s = services.clone();
    workers.push(Worker::spawn(|stop| {
        tokio::spawn(crate::services::ephemeral::expire_periodically(s, stop))
    }));
    workers
}
