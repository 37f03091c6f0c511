//! HTTP routing. Handlers are thin: parse (via ruma), call services off the async workers, answer.

pub mod admin;
pub mod client;
pub mod client_address;
pub mod federation;
pub mod ruma_wrapper;

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

pub type AppRouter = Router<Arc<Services>>;

/// Registers a handler on every path (stable, legacy and unstable) of a ruma endpoint.
pub trait RumaRoute {
    fn ruma<T: Metadata, H: Handler<X, Arc<Services>> + Clone, X: 'static>(self, handler: H) -> Self;
}

impl RumaRoute for AppRouter {
    fn ruma<T: Metadata, H: Handler<X, Arc<Services>> + Clone, X: 'static>(mut self, handler: H) -> Self {
        let filter = MethodFilter::try_from(T::METHOD).expect("ruma endpoints use standard methods");
        for path in ruma_wrapper::paths_of::<T>() {
            self = self.route(path, on(filter, handler.clone()));
            // An empty state key: `/state/{event_type}/` and `/state/{event_type}`.
            if let Some(base) = path.strip_suffix("/{state_key}") {
                self = self.route(&format!("{base}/"), on(filter, handler.clone()));
                self = self.route(base, on(filter, handler.clone()));
            }
        }
        self
    }
}

pub fn router(services: Arc<Services>) -> Router {
    let router = admin::routes(client::routes(Router::new()));
    router
        .fallback(|| async { Error::unrecognized("Unrecognized request") })
        .method_not_allowed_fallback(|| async { Error::method_not_allowed() })
        .layer(middleware::from_fn(cors))
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
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
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
