//! `/_synapse/admin/v1/registration_tokens`: list, read, create, change and delete the tokens
//! registration may require (`services::registration_tokens`), in Synapse's shapes.

use std::sync::Arc;

use axum::{Json, extract::State};
use serde_json::{Map, Value, json};

use super::extract::{Admin, Args, Body, Params};
use crate::{
    error::{Error, Result},
    services::Services,
};

type Answer = Result<Json<Value>>;

fn shown<T: serde::Serialize>(value: T) -> Answer {
    serde_json::to_value(value)
        .map(Json)
        .map_err(|e| Error::internal(e.to_string()))
}

/// `GET …/registration_tokens?valid=true|false`: `{"registration_tokens": [...]}`.
pub async fn list(State(services): State<Arc<Services>>, _: Admin, params: Params) -> Answer {
    let valid = match params.0.get("valid").map(String::as_str) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(Error::invalid_param(format!(
                "valid must be true or false, not {other}"
            )));
        }
    };
    services
        .run(move |s| {
            Ok(Json(
                json!({ "registration_tokens": s.registration_tokens.list(valid)? }),
            ))
        })
        .await
}

/// `GET …/registration_tokens/{token}`.
pub async fn get(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let token = args.string(0)?;
    services
        .run(move |s| {
            let found = s
                .registration_tokens
                .get(&token)?
                .ok_or_else(|| Error::not_found(format!("No such registration token: {token}")))?;
            shown(found)
        })
        .await
}

/// A non-negative integer or null (`Some(None)`) of a body field; absent: None.
fn optional_count(body: &Map<String, Value>, field: &str) -> Result<Option<Option<u64>>> {
    match body.get(field) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => v.as_u64().map(|n| Some(Some(n))).ok_or_else(|| {
            Error::invalid_param(format!("{field} must be a non-negative integer or null"))
        }),
    }
}

/// `POST …/registration_tokens/new` `{token?, uses_allowed?, expiry_time?, length?}`.
pub async fn create(
    State(services): State<Arc<Services>>,
    _: Admin,
    Body(body): Body<Map<String, Value>>,
) -> Answer {
    let token = match body.get("token") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => return Err(Error::invalid_param("token must be a string")),
    };
    let length = match body.get("length") {
        None => 16,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=64) => n as usize,
            _ => {
                return Err(Error::invalid_param(
                    "length must be an integer from 1 to 64",
                ));
            }
        },
    };
    let uses_allowed = optional_count(&body, "uses_allowed")?.flatten();
    let expiry_time = optional_count(&body, "expiry_time")?.flatten();
    services
        .run(move |s| {
            shown(
                s.registration_tokens
                    .create(token, length, uses_allowed, expiry_time)?,
            )
        })
        .await
}

/// `PUT …/registration_tokens/{token}` `{uses_allowed?, expiry_time?}` (null clears one).
pub async fn update(
    State(services): State<Arc<Services>>,
    _: Admin,
    args: Args,
    Body(body): Body<Map<String, Value>>,
) -> Answer {
    let token = args.string(0)?;
    let uses_allowed = optional_count(&body, "uses_allowed")?;
    let expiry_time = optional_count(&body, "expiry_time")?;
    services
        .run(move |s| {
            shown(
                s.registration_tokens
                    .update(&token, uses_allowed, expiry_time)?,
            )
        })
        .await
}

/// `DELETE …/registration_tokens/{token}`: `{}`.
pub async fn delete(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let token = args.string(0)?;
    services
        .run(move |s| {
            s.registration_tokens.delete(&token)?;
            Ok(Json(json!({})))
        })
        .await
}
