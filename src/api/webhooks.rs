//! Incoming webhooks (spec/webhooks.md): the REST API that manages a room's webhooks,
//! `/_parvis/client/v1/rooms/{roomId}/webhooks`, and the secret URLs tools post to,
//! `/_parvis/hooks/{id}/{secret}`. Thin: the work is in `services::webhooks`.

use std::sync::Arc;

use axum::{Json, extract::State};
use http::{HeaderMap, Method, header::CONTENT_TYPE};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    AppRouter,
    admin::extract::{Args, Body, Caller},
};
use crate::{
    error::{Error, Result},
    services::{
        Services,
        webhooks::{manage, post as posting},
    },
};

pub fn routes(router: AppRouter) -> AppRouter {
    const ROOM_HOOKS: &str = "/_parvis/client/v1/rooms/{room_id}/webhooks";
    router
        .route(Method::GET, ROOM_HOOKS, list)
        .route(Method::POST, ROOM_HOOKS, create)
        .route(
            Method::DELETE,
            "/_parvis/client/v1/rooms/{room_id}/webhooks/{webhook_id}",
            revoke,
        )
        .route(Method::POST, "/_parvis/hooks/{webhook_id}/{secret}", post)
}

fn check_enabled(services: &Services) -> Result<()> {
    if services.webhooks.config().enabled {
        Ok(())
    } else {
        Err(Error::unrecognized("Webhooks are disabled on this server"))
    }
}

/// `GET /_parvis/client/v1/rooms/{roomId}/webhooks`: the room's active webhooks.
async fn list(
    State(services): State<Arc<Services>>,
    Caller(user): Caller,
    args: Args,
) -> Result<Json<Value>> {
    check_enabled(&services)?;
    let room_id = args.room(0)?;
    let hooks = services
        .run(move |s| manage::list(s, &room_id, &user))
        .await?;
    Ok(Json(
        json!({ "webhooks": hooks.iter().map(manage::hook_json).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    avatar_url: Option<String>,
}

/// `POST /_parvis/client/v1/rooms/{roomId}/webhooks` `{"name", "avatar_url"?}`: a new webhook;
/// the answer holds its secret URL, shown this once.
async fn create(
    State(services): State<Arc<Services>>,
    Caller(user): Caller,
    args: Args,
    Body(body): Body<CreateBody>,
) -> Result<Json<Value>> {
    check_enabled(&services)?;
    let room_id = args.room(0)?;
    services
        .run(move |s| {
            let new = manage::NewHook {
                name: &body.name,
                avatar_url: body.avatar_url.as_deref(),
            };
            let (hook, secret) = manage::create(s, &room_id, &user, new)?;
            let mut answer = manage::hook_json(&hook);
            let path = hook.path(&secret);
            answer["url"] = json!(manage::url_of(s, &path));
            answer["path"] = json!(path);
            Ok(Json(answer))
        })
        .await
}

/// `DELETE /_parvis/client/v1/rooms/{roomId}/webhooks/{webhookId}`: revokes it.
async fn revoke(
    State(services): State<Arc<Services>>,
    Caller(user): Caller,
    args: Args,
) -> Result<Json<Value>> {
    check_enabled(&services)?;
    let room_id = args.room(0)?;
    let id = args.string(1)?;
    services
        .run(move |s| manage::revoke(s, &room_id, &user, &id))
        .await?;
    Ok(Json(json!({})))
}

/// `POST /_parvis/hooks/{id}/{secret}`: a tool posts a message (Slack's JSON, plain JSON, form
/// `payload=`, or text).
async fn post(
    State(services): State<Arc<Services>>,
    args: Args,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>> {
    check_enabled(&services)?;
    let (id, secret) = (args.string(0)?, args.string(1)?);
    let hook = services
        .run(move |s| posting::authorised_hook(s, &id, &secret))
        .await?;
    let limit = services.webhooks.config().max_body_bytes;
    let too_large = || Error::too_large(format!("A webhook post is at most {limit} bytes"));
    if headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|length| length > limit)
    {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let event_id = services
        .run(move |s| posting::post(s, &hook, content_type.as_deref(), &bytes))
        .await?;
    Ok(Json(json!({ "ok": true, "event_id": event_id })))
}
