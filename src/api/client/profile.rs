//! Profiles: display name and avatar, copied into the user's member events.

use std::sync::Arc;

use axum::extract::State;
use ruma::{
    UserId,
    api::client::profile::{
        delete_profile_field, get_profile, get_profile_field, set_profile_field,
    },
    events::StateEventType,
    profile::{ProfileFieldName, ProfileFieldValue},
};
use serde_json::{Value, json};

use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
    services::{
        Services,
        rooms::{self, membership::Membership},
        timeline::append::NewEvent,
    },
};

type Res<T> = Result<RumaResponse<T>>;

fn field_value(s: &Services, user: &UserId, field: &ProfileFieldName) -> Result<Option<Value>> {
    let profile = s
        .users
        .profile(user)?
        .ok_or_else(|| Error::not_found("Profile not found"))?;
    Ok(match field {
        ProfileFieldName::DisplayName => profile.displayname.map(Value::String),
        ProfileFieldName::AvatarUrl => profile.avatar_url.map(Value::String),
        _ => None,
    })
}

pub async fn get(
    State(services): State<Arc<Services>>,
    req: Ruma<get_profile::v3::Request>,
) -> Res<get_profile::v3::Response> {
    if req.body.user_id.server_name() != services.globals.server_name() {
        let remote =
            crate::federation::profile::remote_profile(&services, &req.body.user_id, None).await?;
        let mut response = get_profile::v3::Response::new();
        for (k, v) in remote {
            response.data.set(k, v);
        }
        return Ok(response.into());
    }
    // A user of an application service's namespace may be created by the service when asked.
    crate::services::appservice::query::ask_if_unknown(&services, &req.body.user_id).await?;
    services
        .run(move |s| {
            let profile = s
                .users
                .profile(&req.body.user_id)?
                .ok_or_else(|| Error::not_found("Profile not found"))?;
            let mut response = get_profile::v3::Response::new();
            if let Some(name) = profile.displayname {
                response.data.set("displayname".into(), json!(name));
            }
            if let Some(avatar) = profile.avatar_url {
                response.data.set("avatar_url".into(), json!(avatar));
            }
            Ok(response.into())
        })
        .await
}

pub async fn get_field(
    State(services): State<Arc<Services>>,
    req: Ruma<get_profile_field::v3::Request>,
) -> Res<get_profile_field::v3::Response> {
    if req.body.user_id.server_name() != services.globals.server_name() {
        let field = req.body.field.as_str().to_owned();
        let mut remote =
            crate::federation::profile::remote_profile(&services, &req.body.user_id, Some(&field))
                .await?;
        let value = remote
            .remove(&field)
            .ok_or_else(|| Error::not_found("Profile field not set"))?;
        let value =
            ProfileFieldValue::new(&field, value).map_err(|e| Error::internal(e.to_string()))?;
        return Ok(get_profile_field::v3::Response::new(value).into());
    }
    services
        .run(move |s| {
            let value = field_value(s, &req.body.user_id, &req.body.field)?
                .ok_or_else(|| Error::not_found("Profile field not set"))?;
            let value = ProfileFieldValue::new(req.body.field.as_str(), value)
                .map_err(|e| Error::internal(e.to_string()))?;
            Ok(get_profile_field::v3::Response::new(value).into())
        })
        .await
}

/// Stores a profile change and propagates display name and avatar to joined rooms.
pub(crate) fn update_profile(
    s: &Services,
    user: &UserId,
    field: &ProfileFieldName,
    value: Option<String>,
) -> Result<()> {
    match field {
        ProfileFieldName::DisplayName => s.users.set_profile(user, |a| a.displayname = value)?,
        ProfileFieldName::AvatarUrl => s.users.set_profile(user, |a| a.avatar_url = value)?,
        _ => {
            return Err(Error::new(
                http::StatusCode::BAD_REQUEST,
                "M_UNRECOGNIZED",
                "Unsupported profile field",
            ));
        }
    }
    for room in s.membership.rooms_of(user)? {
        if room.membership != Membership::Join {
            continue;
        }
        let Some(mut content) =
            rooms::state_content(s, &room.room_id, &StateEventType::RoomMember, user.as_str())?
        else {
            continue;
        };
        let profile = s.users.profile(user)?.unwrap_or_default();
        content["displayname"] = profile.displayname.map_or(Value::Null, Value::String);
        content["avatar_url"] = profile.avatar_url.map_or(Value::Null, Value::String);
        if let Some(obj) = content.as_object_mut() {
            obj.retain(|_, v| !v.is_null());
        }
        let event = NewEvent::state(StateEventType::RoomMember, user.as_str(), content);
        if let Err(e) = rooms::send(s, &room.room_id, user, event) {
            tracing::warn!("profile update in {}: {e}", room.room_id);
        }
    }
    Ok(())
}

fn own_profile(caller: &UserId, target: &UserId) -> Result<()> {
    if caller != target {
        return Err(Error::forbidden("You may only change your own profile"));
    }
    Ok(())
}

pub async fn set_field(
    State(services): State<Arc<Services>>,
    req: Ruma<set_profile_field::v3::Request>,
) -> Res<set_profile_field::v3::Response> {
    let caller = req.user()?.clone();
    services.moderation.ensure_not_suspended(&caller)?;
    services
        .run(move |s| {
            own_profile(&caller, &req.body.user_id)?;
            let field = req.body.value.field_name();
            let value = req
                .body
                .value
                .value()
                .as_str()
                .map(str::to_owned)
                .filter(|v| !v.is_empty());
            if value.as_ref().is_some_and(|v| v.len() > 1024) {
                return Err(Error::too_large("Profile field is too long"));
            }
            update_profile(s, &caller, &field, value)?;
            Ok(set_profile_field::v3::Response::new().into())
        })
        .await
}

pub async fn delete_field(
    State(services): State<Arc<Services>>,
    req: Ruma<delete_profile_field::v3::Request>,
) -> Res<delete_profile_field::v3::Response> {
    let caller = req.user()?.clone();
    services.moderation.ensure_not_suspended(&caller)?;
    services
        .run(move |s| {
            own_profile(&caller, &req.body.user_id)?;
            update_profile(s, &caller, &req.body.field, None)?;
            Ok(delete_profile_field::v3::Response::new().into())
        })
        .await
}
