//! Metrics over HTTP: the middleware that counts and times every request of the client and
//! federation listeners (by route template, so the label set stays bounded), and the separate
//! listener on `[metrics] listen` that serves `GET /_synapse/metrics` (Synapse's path, which
//! operators' Prometheus configurations already name) and `GET /metrics`.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use axum::{
    Router,
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use http::{StatusCode, header};

use crate::{error::Result, services::Services};

/// The OpenMetrics text format (which Prometheus reads).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn record(
    services: &Services,
    listener: &'static str,
    request: Request,
    next: Next,
) -> Response {
    // Without a metrics listener nobody reads the counts: requests pay nothing for them.
    if services.config().metrics.listen.is_none() {
        return next.run(request).await;
    }
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    services.metrics.request(
        listener,
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Middleware of the client listener.
pub async fn record_client(
    State(services): State<Arc<Services>>,
    request: Request,
    next: Next,
) -> Response {
    record(&services, "client", request, next).await
}

/// Middleware of the federation listener.
pub async fn record_federation(
    State(services): State<Arc<Services>>,
    request: Request,
    next: Next,
) -> Response {
    record(&services, "federation", request, next).await
}

async fn scrape(State(services): State<Arc<Services>>) -> Response {
    match services.run(|s| crate::services::metrics::render(s)).await {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.message).into_response(),
    }
}

/// Binds `[metrics] listen` (when set) and serves the metrics until `stop`.
pub async fn start(
    services: &Arc<Services>,
) -> Result<
    Option<(
        SocketAddr,
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    )>,
> {
    let Some(listen) = services.config().metrics.listen else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        crate::error::Error::internal(format!("cannot listen on {listen} (metrics.listen): {e}"))
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| crate::error::Error::internal(e.to_string()))?;
    let app = Router::new()
        .route("/_synapse/metrics", get(scrape))
        .route("/metrics", get(scrape))
        .with_state(services.clone());
    let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stop_rx.changed().await;
        });
        if let Err(e) = serve.await {
            tracing::error!("metrics listener: {e}");
        }
    });
    Ok(Some((addr, stop, task)))
}
