//! Typing, receipts, read markers and presence.

use std::{sync::Arc, time::Duration};

use axum::extract::State;
use ruma::{
    api::client::{
        presence::{get_presence, set_presence},
        read_marker::set_read_marker,
        receipt::create_receipt::{self, v3::ReceiptType},
        typing::create_typing_event::{self, v3::Typing},
    },
    events::receipt::ReceiptThread,
    presence::PresenceState,
};
use serde_json::json;

use super::account_data::own;
use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
    services::{Services, rooms, sync::shares_room},
};

type Res<T> = Result<RumaResponse<T>>;

pub async fn typing(
    State(services): State<Arc<Services>>,
    req: Ruma<create_typing_event::v3::Request>,
) -> Res<create_typing_event::v3::Response> {
    let caller = req.user()?.clone();
    services
        .run(move |s| {
            own(&caller, &req.body.user_id)?;
            let short = rooms::short_room(s, &req.body.room_id)
                .map_err(|_| Error::forbidden("Unknown room"))?;
            if !s.membership.is_joined(short, &caller)? {
                return Err(Error::forbidden("You are not in this room"));
            }
            // A shadow-banned user's typing is not shown.
            if s.shadow_bans.contains(&caller) {
                return Ok(create_typing_event::v3::Response::new().into());
            }
            let on = match req.body.state {
                Typing::Yes(info) => {
                    s.typing
                        .set(&s.globals, &req.body.room_id, &caller, true, info.timeout)?;
                    true
                }
                _ => {
                    s.typing.set(
                        &s.globals,
                        &req.body.room_id,
                        &caller,
                        false,
                        Duration::ZERO,
                    )?;
                    false
                }
            };
            crate::services::appservice::ephemeral::typing_changed(s, short, &req.body.room_id)?;
            crate::federation::sender::edus::typing(s, short, &req.body.room_id, &caller, on)?;
            Ok(create_typing_event::v3::Response::new().into())
        })
        .await
}

/// Stores a receipt after checking the user is joined and the event is in the room.
fn receipt(
    s: &Services,
    user: &ruma::UserId,
    room_id: &ruma::RoomId,
    kind: &str,
    event_id: &ruma::EventId,
    thread: Option<String>,
) -> Result<()> {
    let short = rooms::short_room(s, room_id).map_err(|_| Error::forbidden("Unknown room"))?;
    if !s.membership.is_joined(short, user)? {
        return Err(Error::forbidden("You are not in this room"));
    }
    let event = rooms::event_by_id(s, event_id)?.filter(|e| e.pdu.room_id == room_id);
    if event.is_none() {
        return Err(Error::not_found("Event not found"));
    }
    if kind == "m.fully_read" {
        s.account_data.set(
            &s.globals,
            user,
            Some(room_id),
            "m.fully_read",
            &json!({ "event_id": event_id }),
        )?;
        return Ok(());
    }
    // The receipt and the counts it resets: one batch.
    crate::services::push::read::receipt(s, user, short, kind, event_id, thread.as_deref())?;
    crate::services::appservice::ephemeral::receipt_stored(
        s,
        short,
        room_id,
        kind,
        user,
        event_id,
        thread.as_deref(),
    )?;
    crate::federation::sender::edus::receipt(
        s,
        short,
        room_id,
        kind,
        user,
        event_id,
        thread.as_deref(),
    )
}

pub async fn create_receipt(
    State(services): State<Arc<Services>>,
    req: Ruma<create_receipt::v3::Request>,
) -> Res<create_receipt::v3::Response> {
    let caller = req.user()?.clone();
    services
        .run(move |s| {
            let kind = match &req.body.receipt_type {
                ReceiptType::Read => "m.read",
                ReceiptType::ReadPrivate => "m.read.private",
                ReceiptType::FullyRead => "m.fully_read",
                _ => return Err(Error::invalid_param("Unknown receipt type")),
            };
            let thread = match &req.body.thread {
                ReceiptThread::Unthreaded => None,
                ReceiptThread::Main => Some("main".to_owned()),
                ReceiptThread::Thread(id) => Some(id.to_string()),
                _ => None,
            };
            receipt(
                s,
                &caller,
                &req.body.room_id,
                kind,
                &req.body.event_id,
                thread,
            )?;
            Ok(create_receipt::v3::Response::new().into())
        })
        .await
}

pub async fn read_markers(
    State(services): State<Arc<Services>>,
    req: Ruma<set_read_marker::v3::Request>,
) -> Res<set_read_marker::v3::Response> {
    let caller = req.user()?.clone();
    services
        .run(move |s| {
            let room_id = &req.body.room_id;
            if let Some(event) = &req.body.fully_read {
                receipt(s, &caller, room_id, "m.fully_read", event, None)?;
            }
            if let Some(event) = &req.body.read_receipt {
                receipt(s, &caller, room_id, "m.read", event, None)?;
            }
            if let Some(event) = &req.body.private_read_receipt {
                receipt(s, &caller, room_id, "m.read.private", event, None)?;
            }
            Ok(set_read_marker::v3::Response::new().into())
        })
        .await
}

pub async fn set(
    State(services): State<Arc<Services>>,
    req: Ruma<set_presence::v3::Request>,
) -> Res<set_presence::v3::Response> {
    let caller = req.user()?.clone();
    services
        .run(move |s| {
            own(&caller, &req.body.user_id)?;
            let presence = match req.body.presence {
                PresenceState::Online => "online",
                PresenceState::Unavailable => "unavailable",
                PresenceState::Offline => "offline",
                _ => return Err(Error::invalid_param("Unknown presence state")),
            };
            if req.body.status_msg.as_ref().is_some_and(|m| m.len() > 1024) {
                return Err(Error::too_large("Status message is too long"));
            }
            if let Some(record) = s.presence.set(
                &s.globals,
                &caller,
                presence,
                Some(req.body.status_msg.clone()),
            )? {
                crate::services::appservice::ephemeral::presence_changed(s, &caller, &record)?;
            }
            crate::federation::sender::edus::presence(
                s,
                &caller,
                presence,
                req.body.status_msg.as_deref(),
            )?;
            Ok(set_presence::v3::Response::new().into())
        })
        .await
}

pub async fn get(
    State(services): State<Arc<Services>>,
    req: Ruma<get_presence::v3::Request>,
) -> Res<get_presence::v3::Response> {
    let caller = req.user()?.clone();
    services
        .run(move |s| {
            let target = &req.body.user_id;
            if !s.users.exists(target)? {
                return Err(Error::not_found("Unknown user"));
            }
            if &caller != target && !shares_room(s, &caller, target)? {
                return Err(Error::forbidden("You do not share a room with this user"));
            }
            let record = s.presence.get(target)?;
            let state = match record.as_ref().map(|r| r.presence.as_str()) {
                Some("online") => PresenceState::Online,
                Some("unavailable") => PresenceState::Unavailable,
                _ => PresenceState::Offline,
            };
            let mut response = get_presence::v3::Response::new(state);
            if let Some(record) = record {
                response.status_msg = record.status_msg;
                response.last_active_ago = Some(Duration::from_millis(
                    crate::util::now_ms().saturating_sub(record.last_active_ts),
                ));
                response.currently_active = Some(record.presence == "online");
            }
            Ok(response.into())
        })
        .await
}
