//! HTTP routing. Handlers are thin: parse (via ruma), call services off the async workers, answer.

pub mod admin;
pub mod always_sent;
pub mod appservice_auth;
pub mod client;
pub mod client_address;
pub mod control;
pub mod federation;
pub mod health;
pub mod metrics;
pub mod panic_guard;
pub mod ruma_wrapper;
pub mod webhooks;

use std::sync::Arc;

use axum::{
    Router,
    extract::Request,
    handler::Handler,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{MethodFilter, on},
};
use http::{HeaderValue, Method, StatusCode, header};
use ruma::api::Metadata;

use crate::{error::Error, services::Services};

/// The client router under construction, with the method and path of every route registered on it
/// (`route_list`: the access-control test in tests/route_access.rs checks that each one has an entry).
pub struct AppRouter {
    router: Router<Arc<Services>>,
    routes: Vec<(Method, String)>,
}

impl AppRouter {
    fn new() -> Self {
        Self {
            router: Router::new(),
            routes: Vec::new(),
        }
    }

    /// Registers `handler` for `method` on `path`.
    pub fn route<H: Handler<X, Arc<Services>> + Clone, X: 'static>(
        mut self,
        method: Method,
        path: &str,
        handler: H,
    ) -> Self {
        let filter = MethodFilter::try_from(method.clone()).expect("routes use standard methods");
        self.router = self.router.route(path, on(filter, handler));
        self.routes.push((method, path.to_owned()));
        self
    }
}

/// Registers a handler on every path (stable, legacy and unstable) of a ruma endpoint.
pub trait RumaRoute {
    fn ruma<T: Metadata, H: Handler<X, Arc<Services>> + Clone, X: 'static>(
        self,
        handler: H,
    ) -> Self;
}

impl RumaRoute for AppRouter {
    fn ruma<T: Metadata, H: Handler<X, Arc<Services>> + Clone, X: 'static>(
        mut self,
        handler: H,
    ) -> Self {
        for path in ruma_wrapper::paths_of::<T>() {
            self = self.route(T::METHOD, path, handler.clone());
            // An empty state key: `/state/{event_type}/` and `/state/{event_type}`.
            if let Some(base) = path.strip_suffix("/{state_key}") {
                self = self.route(T::METHOD, &format!("{base}/"), handler.clone());
                self = self.route(T::METHOD, base, handler.clone());
            }
        }
        self
    }
}

fn client_routes() -> AppRouter {
    webhooks::routes(admin::routes(client::routes(AppRouter::new()))).route(
        Method::GET,
        "/health",
        health::health,
    )
}

/// The method and path of every route of the client listener, as registered (path parameters in
/// braces), without starting a server.
pub fn route_list() -> Vec<(Method, String)> {
    client_routes().routes
}

pub fn router(services: Arc<Services>) -> Router {
    client_routes()
        .router
        .fallback(|| async { Error::unrecognized("Unrecognized request") })
        .method_not_allowed_fallback(|| async { Error::method_not_allowed() })
        .layer(middleware::from_fn_with_state(
            services.clone(),
            metrics::record_client,
        ))
        .layer(middleware::from_fn(cors))
        .layer(middleware::from_fn(panic_guard::catch_panic))
        .with_state(services)
}

/// CORS for browser clients: answers preflights and marks every answer.
async fn cors(req: Request, next: Next) -> Response {
    let mut response = if req.method() == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        next.run(req).await
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("X-Requested-With, Content-Type, Authorization"),
    );
    response
}
