//! The one error type of the server: a Matrix `errcode`, an HTTP status and a message.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::storage::StorageError;

#[derive(Debug, Clone)]
pub struct Error {
    pub status: StatusCode,
    pub errcode: &'static str,
    pub message: String,
    /// Extra top-level fields of the error body (`retry_after_ms`, `soft_logout`, …).
    pub extra: Map<String, Value>,
    /// A complete body that replaces the standard one (user-interactive auth answers).
    pub body: Option<Value>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(status: StatusCode, errcode: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            errcode,
            message: message.into(),
            extra: Map::new(),
            body: None,
        }
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "M_FORBIDDEN", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "M_NOT_FOUND", message)
    }
    pub fn bad_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_BAD_JSON", message)
    }
    pub fn not_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_NOT_JSON", message)
    }
    pub fn invalid_param(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_INVALID_PARAM", message)
    }
    pub fn missing_param(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_MISSING_PARAM", message)
    }
    pub fn missing_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "M_MISSING_TOKEN",
            "Missing access token",
        )
    }
    pub fn unknown_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "M_UNKNOWN_TOKEN",
            "Unknown access token",
        )
        .with("soft_logout", Value::Bool(false))
    }
    /// An access token that expired (refresh it): 401 `M_UNKNOWN_TOKEN` with `soft_logout`, so
    /// the client keeps its session and calls `/refresh`.
    pub fn expired_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "M_UNKNOWN_TOKEN",
            "Access token has expired",
        )
        .with("soft_logout", Value::Bool(true))
    }
    /// A locked account (an admin's lock): 401 `M_USER_LOCKED` with `soft_logout`.
    pub fn user_locked() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "M_USER_LOCKED",
            "This account has been locked",
        )
        .with("soft_logout", Value::Bool(true))
    }
    /// A suspended account tried something only active accounts may do: 403 `M_USER_SUSPENDED`.
    pub fn user_suspended() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "M_USER_SUSPENDED",
            "This account is suspended: it may read, leave rooms and redact its own events",
        )
    }
    pub fn user_in_use() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "M_USER_IN_USE",
            "User ID already taken",
        )
    }
    pub fn invalid_username(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_INVALID_USERNAME", message)
    }
    pub fn exclusive(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_EXCLUSIVE", message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE", message)
    }
    pub fn unrecognized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "M_UNRECOGNIZED", message)
    }
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "M_UNRECOGNIZED",
            "Method not allowed on this endpoint",
        )
    }
    pub fn limit_exceeded(retry_after_ms: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "M_LIMIT_EXCEEDED",
            "Too many requests",
        )
        .with("retry_after_ms", json!(retry_after_ms))
    }
    pub fn room_in_use(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_ROOM_IN_USE", message)
    }
    pub fn unsupported_room_version(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "M_UNSUPPORTED_ROOM_VERSION",
            message,
        )
    }
    pub fn invalid_room_state(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_INVALID_ROOM_STATE", message)
    }
    pub fn weak_password(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_WEAK_PASSWORD", message)
    }
    pub fn user_deactivated() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "M_USER_DEACTIVATED",
            "This account has been deactivated",
        )
    }
    pub fn unknown(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_UNKNOWN", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "M_UNKNOWN", message)
    }
    /// A user-interactive authentication answer (401 with flows, session and completed stages).
    pub fn uia(body: Value) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "M_FORBIDDEN", "");
        e.body = Some(body);
        e
    }

    pub fn to_json(&self) -> Value {
        if let Some(body) = &self.body {
            return body.clone();
        }
        let mut body = self.extra.clone();
        body.insert("errcode".into(), Value::String(self.errcode.to_owned()));
        body.insert("error".into(), Value::String(self.message.clone()));
        Value::Object(body)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.errcode,
            self.message
        )
    }
}

impl std::error::Error for Error {}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        tracing::error!("storage: {e}");
        Self::internal("Database error")
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!("{self}");
        }
        let mut response = (self.status, axum::Json(self.to_json())).into_response();
        if let Some(retry) = self.extra.get("retry_after_ms").and_then(Value::as_u64) {
            let secs = retry.div_ceil(1000).max(1);
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}
