//! A panic in a request handler is answered 500 `M_UNKNOWN` (and logged); the server goes on
//! serving. Work on the blocking pool already comes back as an error (`Services::run`); this
//! catches the handlers' own async code, on the client and the federation listener alike.

use axum::{
    extract::Request,
    middleware::Next,
    response::{IntoResponse, Response},
};
use futures_util::FutureExt;

use crate::error::Error;

pub async fn catch_panic(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    match std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(_) => {
            tracing::error!("the handler of {method} {path} panicked");
            Error::internal("Internal server error").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::{Router, middleware, routing::get};

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_server_goes_on() {
        let router = Router::new()
            .route(
                "/boom",
                get(|| async { if true { panic!("boom") } else { "" } }),
            )
            .route("/ok", get(|| async { "ok" }))
            .layer(middleware::from_fn(super::catch_panic));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let client = reqwest::Client::new();
        for _ in 0..3 {
            let res = client
                .get(format!("http://{addr}/boom"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 500);
            let body: serde_json::Value = res.json().await.unwrap();
            assert_eq!(body["errcode"], "M_UNKNOWN");
            let res = client
                .get(format!("http://{addr}/ok"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.text().await.unwrap(), "ok");
        }
    }
}
