//! Glue between axum and ruma: `Ruma<T>` parses a ruma request type (authenticating the caller
//! as its metadata says), `RumaResponse<T>` serialises a ruma response.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{FromRequest, RawPathParams, Request},
    response::{IntoResponse, Response},
};
use bytes::BytesMut;
use ruma::{
    OwnedDeviceId, OwnedUserId, UserId,
    api::{
        IncomingRequest, IncomingRequestExt, Metadata, OutgoingResponseExt,
        auth_scheme::{
            AccessToken, AccessTokenOptional, AppserviceToken, AppserviceTokenOptional,
            NoAccessToken, NoAuthentication,
        },
    },
};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    services::Services,
};

/// How an endpoint wants to be authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthNeed {
    Required,
    Optional,
    None,
}

pub trait AuthKind {
    const NEED: AuthNeed;
}
impl AuthKind for AccessToken {
    const NEED: AuthNeed = AuthNeed::Required;
}
impl AuthKind for AccessTokenOptional {
    const NEED: AuthNeed = AuthNeed::Optional;
}
impl AuthKind for AppserviceToken {
    const NEED: AuthNeed = AuthNeed::Required;
}
impl AuthKind for AppserviceTokenOptional {
    const NEED: AuthNeed = AuthNeed::Optional;
}
impl AuthKind for NoAuthentication {
    const NEED: AuthNeed = AuthNeed::None;
}
impl AuthKind for NoAccessToken {
    const NEED: AuthNeed = AuthNeed::None;
}

/// A parsed request with the authenticated caller.
pub struct Ruma<T> {
    pub body: T,
    pub user: Option<OwnedUserId>,
    pub device: Option<OwnedDeviceId>,
    /// The request body as JSON, when it is JSON (for fields ruma does not keep, such as UIA `auth`).
    pub json: Option<Value>,
    /// The raw query string (for fields ruma does not keep, such as a filter's relation fields).
    pub query: Option<String>,
    /// The application service whose `as_token` the request carried.
    pub appservice: Option<String>,
}

impl<T> Ruma<T> {
    /// The authenticated user (M_MISSING_TOKEN where the endpoint's auth was optional).
    pub fn user(&self) -> Result<&OwnedUserId> {
        self.user.as_ref().ok_or_else(Error::missing_token)
    }

    /// The decoded value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded_pairs(self.query.as_deref()?)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn device(&self) -> Result<&OwnedDeviceId> {
        self.device.as_ref().ok_or_else(Error::missing_token)
    }
}

fn access_token(parts: &http::request::Parts) -> Result<Option<String>> {
    if let Some(header) = parts.headers.get(http::header::AUTHORIZATION) {
        let value = header.to_str().map_err(|_| Error::missing_token())?;
        let token = value.strip_prefix("Bearer ").ok_or_else(|| {
            Error::missing_token().with("error", "Invalid Authorization header".into())
        })?;
        return Ok(Some(token.trim().to_owned()));
    }
    Ok(parts.uri.query().and_then(|q| {
        form_urlencoded_pairs(q)
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v)
    }))
}

fn form_urlencoded_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        Some((decode(k), decode(v)))
    })
}

/// Who made a request.
#[derive(Default)]
pub struct Caller {
    pub user: Option<OwnedUserId>,
    pub device: Option<OwnedDeviceId>,
    /// The application service whose `as_token` the request carried (also on endpoints that need
    /// no access token: registration and login of its users).
    pub appservice: Option<String>,
    /// Exempt from rate limits (an application service registered with `rate_limited: false`).
    pub unlimited: bool,
}

/// Identifies the caller, as the endpoint requires.
pub async fn authenticate(
    services: &Arc<Services>,
    parts: &http::request::Parts,
    need: AuthNeed,
) -> Result<(Option<OwnedUserId>, Option<OwnedDeviceId>)> {
    let caller = identify(services, parts, need).await?;
    Ok((caller.user, caller.device))
}

/// Identifies the caller: a user's access token, or an application service's `as_token` (acting
/// as its own user or the `user_id` it names, `api::appservice_auth`).
pub async fn identify(
    services: &Arc<Services>,
    parts: &http::request::Parts,
    need: AuthNeed,
) -> Result<Caller> {
    let token = access_token(parts)?;
    let appservice = token
        .as_deref()
        .and_then(|t| services.appservices.by_as_token(t));
    if need == AuthNeed::None {
        return Ok(Caller {
            appservice: appservice.map(|a| a.registration.id.clone()),
            ..Default::default()
        });
    }
    if let Some(appservice) = appservice {
        let mut user_id = parts.uri.query().and_then(|q| {
            form_urlencoded_pairs(q)
                .find(|(k, _)| k == "user_id")
                .map(|(_, v)| v)
        });
        // Where the token is optional (`POST /register`), frameworks name the user they are
        // about to create; one outside the namespace is not masqueraded as, and the endpoint
        // itself answers for it (`M_EXCLUSIVE`), as the spec and Synapse do.
        if need == AuthNeed::Optional
            && parts.uri.path().ends_with("/register")
            && user_id.as_deref().is_some_and(|raw| {
                UserId::parse(raw).map_or(true, |user| {
                    !appservice.owns_user(&user)
                        || user.server_name() != services.globals.server_name()
                })
            })
        {
            user_id = None;
        }
        // MSC4326 device masquerading (`org.matrix.msc3202.device_id` before it was merged).
        let device_id = parts.uri.query().and_then(|q| {
            form_urlencoded_pairs(q)
                .find(|(k, _)| k == "device_id" || k == "org.matrix.msc3202.device_id")
                .map(|(_, v)| v)
        });
        let acting = super::appservice_auth::acting(
            services,
            appservice,
            user_id,
            device_id,
            need == AuthNeed::Required,
        )
        .await?;
        return Ok(Caller {
            user: Some(acting.user),
            device: Some(acting.device),
            appservice: Some(acting.appservice),
            unlimited: acting.unlimited,
        });
    }
    match token {
        None if need == AuthNeed::Required => Err(Error::missing_token()),
        None => Ok(Caller::default()),
        Some(token) => {
            let owner = token_owner(services, token, parts.uri.path()).await?;
            Ok(Caller {
                user: Some(owner.user),
                device: Some(owner.device),
                ..Default::default()
            })
        }
    }
}

/// The owner of an access token that works now: 401 `M_UNKNOWN_TOKEN` when it is unknown (with
/// `soft_logout` when it expired: the client refreshes it), 401 `M_USER_LOCKED` when an admin
/// locked the account, except on `path`s that log out (a locked user may still log out).
pub async fn token_owner(
    services: &Arc<Services>,
    token: String,
    path: &str,
) -> Result<crate::services::users::TokenOwner> {
    // A token in use is in the cache: found there, the request skips a blocking-pool handoff.
    let owner = match services.users.cached_token(&token) {
        Some(owner) => owner,
        None => services
            .run(move |s| s.users.find_token(&token))
            .await?
            .ok_or_else(Error::unknown_token)?,
    };
    if owner
        .expires_ts
        .is_some_and(|ts| ts <= crate::util::now_ms())
    {
        return Err(Error::expired_token());
    }
    let logging_out = path.ends_with("/logout") || path.ends_with("/logout/all");
    if !logging_out && services.moderation.locked.contains(&owner.user) {
        return Err(Error::user_locked());
    }
    Ok(owner)
}

/// The values of the path's parameters, in order (what ruma's `try_from_http_request` takes).
pub async fn path_args(
    parts: &mut http::request::Parts,
    services: &Arc<Services>,
) -> Result<Vec<String>> {
    use axum::extract::FromRequestParts;
    let params = RawPathParams::from_request_parts(parts, services)
        .await
        .map_err(|_| Error::invalid_param("Invalid path parameter"))?;
    Ok(params.iter().map(|(_, v)| v.to_owned()).collect())
}

/// The request body, at most `limits.max_request_bytes` long (larger: 413 `M_TOO_LARGE`).
pub async fn limited_body(body: Body, services: &Arc<Services>) -> Result<bytes::Bytes> {
    axum::body::to_bytes(body, services.config().limits.max_request_bytes)
        .await
        .map_err(|_| Error::too_large("Request body is too large"))
}

impl<T> FromRequest<Arc<Services>> for Ruma<T>
where
    T: IncomingRequest + Send + 'static,
    T::Authentication: AuthKind,
{
    type Rejection = Error;

    async fn from_request(req: Request, services: &Arc<Services>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let path_args = path_args(&mut parts, services).await?;
        let bytes = limited_body(body, services).await?;

        let Caller {
            user,
            device,
            appservice,
            unlimited,
        } = identify(services, &parts, <T::Authentication as AuthKind>::NEED).await?;
        if T::RATE_LIMITED && !unlimited {
            // Without a user, per client address: one anonymous client cannot use up the
            // budget of all others.
            let who = match &user {
                Some(user) => user.to_string(),
                None => {
                    let header = services.config().listen.client_ip_header.as_deref();
                    super::client_address::bucket(super::client_address::of(&parts, header))
                }
            };
            services.rate_limiter.check(&who)?;
        }

        let json = if bytes.is_empty() {
            None
        } else {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => Some(v),
                Err(_) if parts.method == http::Method::GET => None,
                Err(e) => {
                    if is_json_content(&parts)
                        || bytes.first().is_some_and(|b| matches!(b, b'{' | b'['))
                    {
                        return Err(Error::not_json(format!("Body is not valid JSON: {e}")));
                    }
                    None
                }
            }
        };
        // Requests whose body is a JSON object must get one: `[]` or `"x"` is malformed.
        if let Some(v) = &json
            && !v.is_object()
            && is_json_content(&parts)
        {
            return Err(Error::bad_json("Body must be a JSON object"));
        }

        // Endpoints whose last path parameter may be empty (`/state/{type}/` with an empty state
        // key) are also routed without it: give ruma the empty argument back.
        let mut args: Vec<&str> = path_args.iter().map(String::as_str).collect();
        let expected = paths_of::<T>()
            .first()
            .map_or(0, |p| p.matches('{').count());
        while args.len() < expected {
            args.push("");
        }
        // Clients send no body at all where the body's fields are all optional.
        let body_bytes: &[u8] = if bytes.is_empty() && parts.method != http::Method::GET {
            b"{}"
        } else {
            bytes.as_ref()
        };
        let query = parts.uri.query().map(str::to_owned);
        let http_req = http::Request::from_parts(parts, body_bytes);
        // Some of ruma's parsers panic on malformed input (a missing `type` in a login body):
        // such a request is bad JSON, not a reason to drop the connection.
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            T::try_from_http_request(http_req, &args)
        }));
        let body = match parsed {
            Ok(result) => result.map_err(request_error)?,
            Err(_) => return Err(Error::bad_json("Malformed request body")),
        };
        Ok(Ruma {
            body,
            user,
            device,
            json,
            query,
            appservice,
        })
    }
}

/// Maps ruma's parse failures to the spec's errors: bad identifiers and query strings are
/// invalid parameters, everything else is bad JSON.
fn request_error(e: ruma::api::error::FromHttpRequestError) -> Error {
    use ruma::api::error::{DeserializationError, FromHttpRequestError};
    match e {
        FromHttpRequestError::Deserialization(DeserializationError::Ident(e)) => {
            Error::invalid_param(e.to_string())
        }
        FromHttpRequestError::Deserialization(DeserializationError::Query(e)) => {
            Error::invalid_param(e.to_string())
        }
        FromHttpRequestError::Deserialization(DeserializationError::Json(e))
            if e.to_string().contains("sigil") || e.to_string().contains("server name") =>
        {
            Error::invalid_param(e.to_string())
        }
        // A string that cannot be a room version (`/upgrade`'s `new_version`, `createRoom`'s
        // `room_version`) names a version this server does not support.
        FromHttpRequestError::Deserialization(DeserializationError::Json(e))
            if e.to_string().contains("room version ID") =>
        {
            Error::unsupported_room_version(e.to_string())
        }
        FromHttpRequestError::MethodMismatch { .. } => Error::method_not_allowed(),
        other => Error::bad_json(other.to_string()),
    }
}

fn is_json_content(parts: &http::request::Parts) -> bool {
    parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("application/json"))
}

/// A ruma response, serialised as the endpoint defines.
pub struct RumaResponse<T>(pub T);

impl<T: ruma::api::OutgoingResponse> IntoResponse for RumaResponse<T> {
    fn into_response(self) -> Response {
        match self.0.try_into_http_response::<BytesMut>() {
            Ok(res) => res.map(|body| Body::from(body.freeze())),
            Err(e) => Error::internal(format!("response serialisation: {e}")).into_response(),
        }
    }
}

impl<T> From<T> for RumaResponse<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

/// Paths of a ruma endpoint, for the router.
pub fn paths_of<T: Metadata>() -> Vec<&'static str> {
    use ruma::api::path_builder::PathBuilder;
    T::PATH_BUILDER.all_paths().collect()
}
