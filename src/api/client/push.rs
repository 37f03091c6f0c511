//! Push rules, pushers and the notifications list.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    response::{IntoResponse, Response},
};
use ruma::{
    MilliSecondsSinceUnixEpoch, UInt,
    api::client::push::{
        delete_pushrule, get_notifications, get_pushers, get_pushrule, get_pushrule_actions,
        get_pushrule_enabled, get_pushrules_all, get_pushrules_global_scope, set_pusher,
        set_pushrule, set_pushrule_actions, set_pushrule_enabled,
    },
};
use serde_json::Value;

use super::super::{AppRouter, RumaRoute};
use crate::{
    api::{
        always_sent::{self, Filled},
        ruma_wrapper::{AuthNeed, Ruma, RumaResponse, authenticate, paths_of},
    },
    error::{Error, Result},
    services::{
        Services,
        push::{pushers, rules},
        timeline::pdu::{ClientFormat, raw},
    },
};

type Res<T> = Result<RumaResponse<T>>;

pub fn routes(mut router: AppRouter) -> AppRouter {
    for path in paths_of::<set_pusher::v3::Request>() {
        router = router.route(http::Method::POST, path, set_pusher);
    }
    router
        .ruma::<get_pushrules_all::v3::Request, _, _>(all)
        .ruma::<get_pushrules_global_scope::v3::Request, _, _>(global)
        .ruma::<get_pushrule::v3::Request, _, _>(get_rule)
        .ruma::<set_pushrule::v3::Request, _, _>(put_rule)
        .ruma::<delete_pushrule::v3::Request, _, _>(delete_rule)
        .ruma::<get_pushrule_enabled::v3::Request, _, _>(get_enabled)
        .ruma::<set_pushrule_enabled::v3::Request, _, _>(set_enabled)
        .ruma::<get_pushrule_actions::v3::Request, _, _>(get_actions)
        .ruma::<set_pushrule_actions::v3::Request, _, _>(set_actions)
        .ruma::<get_pushers::v3::Request, _, _>(list_pushers)
        .ruma::<get_notifications::v3::Request, _, _>(notifications)
}

pub async fn all(
    State(services): State<Arc<Services>>,
    req: Ruma<get_pushrules_all::v3::Request>,
) -> Result<Filled<get_pushrules_all::v3::Response>> {
    let user = req.user()?.clone();
    let ruleset = services
        .run(move |s| Ok((*rules::ruleset(s, &user)?).clone()))
        .await?;
    Ok(Filled::new(
        get_pushrules_all::v3::Response::new(ruleset),
        always_sent::all_rulesets,
    ))
}

pub async fn global(
    State(services): State<Arc<Services>>,
    req: Ruma<get_pushrules_global_scope::v3::Request>,
) -> Result<Filled<get_pushrules_global_scope::v3::Response>> {
    let user = req.user()?.clone();
    let ruleset = services
        .run(move |s| Ok((*rules::ruleset(s, &user)?).clone()))
        .await?;
    Ok(Filled::new(
        get_pushrules_global_scope::v3::Response::new(ruleset),
        always_sent::ruleset,
    ))
}

pub async fn get_rule(
    State(services): State<Arc<Services>>,
    req: Ruma<get_pushrule::v3::Request>,
) -> Res<get_pushrule::v3::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            let rule = rules::rule(s, &user, &req.body.kind, &req.body.rule_id)?;
            Ok(get_pushrule::v3::Response::new(rule).into())
        })
        .await
}

pub async fn put_rule(
    State(services): State<Arc<Services>>,
    req: Ruma<set_pushrule::v3::Request>,
) -> Res<set_pushrule::v3::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            let set_pushrule::v3::Request {
                rule,
                before,
                after,
                ..
            } = req.body;
            rules::update(s, &user, |ruleset| {
                rules::insert(ruleset, rule, before.as_deref(), after.as_deref())
            })?;
            Ok(set_pushrule::v3::Response::new().into())
        })
        .await
}

pub async fn delete_rule(
    State(services): State<Arc<Services>>,
    req: Ruma<delete_pushrule::v3::Request>,
) -> Res<delete_pushrule::v3::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            rules::check_kind(&req.body.kind)?;
            rules::update(s, &user, |ruleset| {
                rules::remove(ruleset, req.body.kind.clone(), &req.body.rule_id)
            })?;
            Ok(delete_pushrule::v3::Response::new().into())
        })
        .await
}

pub async fn get_enabled(
    State(services): State<Arc<Services>>,
    req: Ruma<get_pushrule_enabled::v3::Request>,
) -> Res<get_pushrule_enabled::v3::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            let rule = rules::rule(s, &user, &req.body.kind, &req.body.rule_id)?;
            Ok(get_pushrule_enabled::v3::Response::new(rule.enabled).into())
        })
        .await
}

pub async fn set_enabled(
    State(services): State<Arc<Services>>,
    req: Ruma<set_pushrule_enabled::v3::Request>,
) -> Res<set_pushrule_enabled::v3::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            rules::check_kind(&req.body.kind)?;
            let b = req.body;
            rules::update(s, &user, |ruleset| {
                rules::set_enabled(ruleset, b.kind.clone(), &b.rule_id, b.enabled)
            })?;
            Ok(set_pushrule_enabled::v3::Response::new().into())
        })
        .await
}

pub async fn get_actions(
    State(services): State<Arc<Services>>,
    req: Ruma<get_pushrule_actions::v3::Request>,
) -> Res<get_pushrule_actions::v3::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            let rule = rules::rule(s, &user, &req.body.kind, &req.body.rule_id)?;
            Ok(get_pushrule_actions::v3::Response::new(rule.actions).into())
        })
        .await
}

pub async fn set_actions(
    State(services): State<Arc<Services>>,
    req: Ruma<set_pushrule_actions::v3::Request>,
) -> Res<set_pushrule_actions::v3::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            rules::check_kind(&req.body.kind)?;
            let b = req.body;
            rules::update(s, &user, |ruleset| {
                rules::set_actions(ruleset, b.kind.clone(), &b.rule_id, b.actions.clone())
            })?;
            Ok(set_pushrule_actions::v3::Response::new().into())
        })
        .await
}

pub async fn list_pushers(
    State(services): State<Arc<Services>>,
    req: Ruma<get_pushers::v3::Request>,
) -> Res<get_pushers::v3::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            let list = s
                .push
                .pushers()
                .list(&user)?
                .into_iter()
                .map(|p| p.pusher)
                .collect();
            Ok(get_pushers::v3::Response::new(list).into())
        })
        .await
}

/// `POST /pushers/set`: checked field by field first (the spec's `M_MISSING_PARAM` and
/// `M_INVALID_PARAM`), then parsed into ruma's `PusherAction`.
pub async fn set_pusher(State(services): State<Arc<Services>>, req: Request) -> Response {
    match set_pusher_inner(services, req).await {
        Ok(response) => response.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn set_pusher_inner(services: Arc<Services>, req: Request) -> Res<set_pusher::v3::Response> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, services.config().limits.max_request_bytes)
        .await
        .map_err(|_| Error::too_large("Request body is too large"))?;
    let (user, device) = authenticate(&services, &parts, AuthNeed::Required).await?;
    let (user, device) = user.zip(device).ok_or_else(Error::missing_token)?;
    services.rate_limiter.check(user.as_str())?;
    let body: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::not_json(format!("Body is not valid JSON: {e}")))?;
    pushers::validate_body(&body)?;
    let action: set_pusher::v3::PusherAction =
        serde_json::from_value(body).map_err(|e| Error::bad_json(e.to_string()))?;
    services
        .run(move |s| {
            match action {
                set_pusher::v3::PusherAction::Post(data) => {
                    s.push
                        .pushers()
                        .set(&user, device.as_str(), data.pusher, data.append)?
                }
                set_pusher::v3::PusherAction::Delete(ids) => {
                    s.push.pushers().delete(&user, &ids)?
                }
                _ => return Err(Error::invalid_param("Unknown pusher action")),
            }
            Ok(set_pusher::v3::Response::new().into())
        })
        .await
}

const DEFAULT_NOTIFICATIONS: usize = 20;
const MAX_NOTIFICATIONS: usize = 100;

pub async fn notifications(
    State(services): State<Arc<Services>>,
    req: Ruma<get_notifications::v3::Request>,
) -> Res<get_notifications::v3::Response> {
    let user = req.user()?.clone();
    let from = match req.body.from.as_deref() {
        None | Some("") => None,
        Some(token) => Some(
            token
                .parse::<u64>()
                .map_err(|_| Error::invalid_param("Invalid from token"))?,
        ),
    };
    let limit = req
        .body
        .limit
        .map_or(DEFAULT_NOTIFICATIONS, |l| u64::from(l) as usize)
        .clamp(1, MAX_NOTIFICATIONS);
    let only_highlight = req.body.only.as_deref() == Some("highlight");
    services
        .run(move |s| {
            let (listed, next) =
                crate::services::push::notifications::list(s, &user, from, limit, only_highlight)?;
            let mut out = Vec::new();
            for item in listed {
                let n = item.notification;
                let Some(event) = crate::services::rooms::event_by_id(s, &n.event_id)? else {
                    continue;
                };
                let json = crate::services::relations::bundle::to_client(
                    s,
                    &event,
                    ClientFormat::Room,
                    &user,
                    Some(""),
                )?;
                let ts = MilliSecondsSinceUnixEpoch(UInt::new_saturating(n.ts));
                out.push(get_notifications::v3::Notification::new(
                    n.actions,
                    raw(&json),
                    item.read,
                    n.room_id,
                    ts,
                ));
            }
            let mut response = get_notifications::v3::Response::new(out);
            response.next_token = next;
            Ok(response.into())
        })
        .await
}
