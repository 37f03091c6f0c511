//! One `POST /_parvis/hooks/{id}/{secret}`: the hook must exist, be active and the secret be its
//! own (else 404, the same answer for each, so URLs cannot be probed); then its rate (429), the
//! payload (400 naming the problem), and one event appended by the hook's user: either the whole
//! message is posted or nothing is.

use ruma::{OwnedEventId, events::TimelineEventType};
use serde_json::{Value, json};

use super::{Hook, render};
use crate::{
    error::{Error, Result},
    services::{Services, rooms, timeline::append::NewEvent},
};

/// The active hook `id` whose secret is `secret`; 404 `M_NOT_FOUND` otherwise.
pub fn authorised_hook(s: &Services, id: &str, secret: &str) -> Result<Hook> {
    s.webhooks
        .hook(id)?
        .filter(|h| h.revoked_ts.is_none() && h.secret_matches(secret))
        .ok_or_else(|| Error::not_found("Unknown webhook"))
}

/// The message content a rendered post becomes.
pub fn content_of(post: &render::RenderedPost) -> Value {
    let mut content = json!({ "msgtype": post.msgtype.as_str(), "body": post.body });
    if let Some(html) = &post.formatted_body {
        content["format"] = json!("org.matrix.custom.html");
        content["formatted_body"] = json!(html);
    }
    // Slack's per-post `username`: MSC4144's per-message profile (clients without it show the
    // webhook's own name). `icon_url` is an http(s) URL, which Matrix clients do not load as an
    // avatar: not used.
    if let Some(name) = &post.username {
        content["com.beeper.per_message_profile"] = json!({
            "id": name,
            "displayname": name,
            "has_fallback": false,
        });
    }
    content
}

/// Posts `body` (of `content_type`) through `hook`; returns the event id.
pub fn post(
    s: &Services,
    hook: &Hook,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<OwnedEventId> {
    s.webhooks.check_rate(&hook.id)?;
    let rendered =
        render::render(content_type, body).map_err(|e| Error::bad_json(e.to_string()))?;
    rooms::send(
        s,
        &hook.room_id,
        &hook.user_id,
        NewEvent::message(TimelineEventType::RoomMessage, content_of(&rendered)),
    )
}
