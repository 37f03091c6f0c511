//! Extractors of the admin API (and of Parvis's own API, `api::webhooks`): the admin caller, path arguments, the query string and the JSON
//! body, each failing with the Matrix errcode the client API uses.

use std::{collections::HashMap, sync::Arc};

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use http::request::Parts;
use ruma::{OwnedRoomId, OwnedUserId};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{
    api::ruma_wrapper::{AuthNeed, authenticate, limited_body},
    error::{Error, Result},
    services::Services,
};

/// The authenticated caller, a server admin: no token 401 `M_MISSING_TOKEN`, an unknown one 401
/// `M_UNKNOWN_TOKEN`, anyone else 403 `M_FORBIDDEN`.
pub struct Admin(pub OwnedUserId);

impl FromRequestParts<Arc<Services>> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, services: &Arc<Services>) -> Result<Self> {
        let (user, _) = authenticate(services, parts, AuthNeed::Required).await?;
        let user = user.ok_or_else(Error::missing_token)?;
        let who = user.clone();
        let admin = services
            .run(move |s| {
                Ok(s.users
                    .account(&who)?
                    .is_some_and(|a| a.admin && !a.deactivated))
            })
            .await?;
        if !admin {
            return Err(Error::forbidden("You are not a server admin"));
        }
        Ok(Self(user))
    }
}

/// The authenticated caller, anyone with an access token (or an application service acting as
/// one of its users): no token 401 `M_MISSING_TOKEN`, an unknown one 401 `M_UNKNOWN_TOKEN`.
pub struct Caller(pub OwnedUserId);

impl FromRequestParts<Arc<Services>> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, services: &Arc<Services>) -> Result<Self> {
        let (user, _) = authenticate(services, parts, AuthNeed::Required).await?;
        Ok(Self(user.ok_or_else(Error::missing_token)?))
    }
}

/// The path arguments, percent-decoded, in order.
pub struct Args(pub Vec<String>);

impl FromRequestParts<Arc<Services>> for Args {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, services: &Arc<Services>) -> Result<Self> {
        let Path(args) = Path::<Vec<String>>::from_request_parts(parts, services)
            .await
            .map_err(|e| Error::invalid_param(format!("Invalid path parameter: {e}")))?;
        Ok(Self(args))
    }
}

impl Args {
    fn arg(&self, i: usize) -> Result<&str> {
        self.0
            .get(i)
            .map(String::as_str)
            .ok_or_else(|| Error::invalid_param("Missing path parameter"))
    }

    /// Argument `i` as a user id (400 `M_INVALID_PARAM` when it is not one).
    pub fn user(&self, i: usize) -> Result<OwnedUserId> {
        let raw = self.arg(i)?;
        OwnedUserId::try_from(raw)
            .map_err(|_| Error::invalid_param(format!("{raw} is not a valid user id")))
    }

    /// Argument `i` as a room id (400 `M_INVALID_PARAM` when it is not one).
    pub fn room(&self, i: usize) -> Result<OwnedRoomId> {
        let raw = self.arg(i)?;
        OwnedRoomId::try_from(raw)
            .map_err(|_| Error::invalid_param(format!("{raw} is not a valid room id")))
    }

    pub fn string(&self, i: usize) -> Result<String> {
        self.arg(i).map(str::to_owned)
    }
}

/// The query string's parameters.
pub struct Params(pub HashMap<String, String>);

impl FromRequestParts<Arc<Services>> for Params {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, services: &Arc<Services>) -> Result<Self> {
        let Query(map) = Query::<HashMap<String, String>>::from_request_parts(parts, services)
            .await
            .map_err(|e| Error::invalid_param(format!("Invalid query string: {e}")))?;
        Ok(Self(map))
    }
}

impl Params {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A boolean parameter (`true` / `false`); anything else is 400 `M_INVALID_PARAM`.
    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(Error::invalid_param(format!(
                "{key} must be true or false, not {other}"
            ))),
        }
    }
}

/// A JSON object body (empty: `{}`), deserialised as `T`: not JSON 400 `M_NOT_JSON`, not an
/// object or not of `T`'s shape 400 `M_BAD_JSON`.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<Services>> for Body<T> {
    type Rejection = Error;

    async fn from_request(req: Request, services: &Arc<Services>) -> Result<Self> {
        let bytes = limited_body(req.into_body(), services).await?;
        let value: Value = if bytes.is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| Error::not_json(format!("Body is not valid JSON: {e}")))?
        };
        if !value.is_object() {
            return Err(Error::bad_json("Body must be a JSON object"));
        }
        serde_json::from_value(value)
            .map(Self)
            .map_err(|e| Error::bad_json(e.to_string()))
    }
}
