//! The push gateway API (`POST /_matrix/push/v1/notify`): the body of a notification, sent with
//! `services::outgoing` (a gateway in a denied address range, `[network]`, is never reached).

use std::time::Duration;

use ruma::events::StateEventType;
use serde_json::{Value, json};

use super::{pushers::StoredPusher, queue::Item};
use crate::{
    error::{Error, Result},
    federation::client::TransportError,
    services::{Services, rooms, timeline::StoredEvent},
};

/// Time limit of one gateway request.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// The `notification` object for one pusher (`event_id_only` or the full event).
pub fn notify_body(
    s: &Services,
    item: &Item,
    pusher: &StoredPusher,
    event: Option<&StoredEvent>,
) -> Result<Value> {
    let http = pusher
        .http()
        .ok_or_else(|| Error::internal("not an http pusher"))?;
    let mut data = serde_json::to_value(http).unwrap_or_else(|_| json!({}));
    if let Some(obj) = data.as_object_mut() {
        obj.remove("url");
    }
    let mut counts = json!({ "unread": item.unread });
    if item.missed_calls > 0 {
        counts["missed_calls"] = json!(item.missed_calls);
    }
    let mut notification = json!({
        "event_id": item.event_id,
        "room_id": item.room_id,
        "counts": counts,
        "prio": if item.highlight { "high" } else { "low" },
        "devices": [{
            "app_id": pusher.pusher.ids.app_id,
            "pushkey": pusher.pusher.ids.pushkey,
            "pushkey_ts": pusher.pushkey_ts,
            "data": data,
            "tweaks": item.tweaks,
        }],
    });
    let event_id_only = http
        .format
        .as_ref()
        .is_some_and(|f| f.as_str() == "event_id_only");
    if let (false, Some(event)) = (event_id_only, event) {
        let n = notification.as_object_mut().expect("object");
        n.insert("type".into(), json!(event.pdu.kind.to_string()));
        n.insert("sender".into(), json!(event.pdu.sender));
        n.insert("content".into(), event.pdu.content_value());
        if let Some(state_key) = &event.pdu.state_key {
            n.insert(
                "user_is_target".into(),
                json!(state_key == item.user.as_str()),
            );
        }
        let room = &item.room_id;
        if let Some(name) = rooms::state_content(s, room, &StateEventType::RoomName, "")?
            .and_then(|c| c.get("name").cloned())
        {
            n.insert("room_name".into(), name);
        }
        if let Some(alias) = rooms::state_content(s, room, &StateEventType::RoomCanonicalAlias, "")?
            .and_then(|c| c.get("alias").cloned())
        {
            n.insert("room_alias".into(), alias);
        }
        if let Some(name) = rooms::state_content(
            s,
            room,
            &StateEventType::RoomMember,
            event.pdu.sender.as_str(),
        )?
        .and_then(|c| c.get("displayname").cloned())
        {
            n.insert("sender_display_name".into(), name);
        }
    }
    Ok(json!({ "notification": notification }))
}

/// How a gateway answered.
#[derive(Debug)]
pub enum Outcome {
    /// 2xx, with the pushkeys it rejected.
    Accepted { rejected: Vec<String> },
    /// A 4xx other than 408 and 429: sending it again will not help.
    Refused(http::StatusCode),
    /// Unreachable, 5xx, 408, 429, a timeout: try again later.
    Retry(String),
}

/// POSTs `body` to the gateway at `url`.
pub async fn post(s: &Services, url: &str, body: &Value) -> Outcome {
    let uri = match super::pushers::check_url(url) {
        Ok(uri) => uri,
        Err(e) => return Outcome::Retry(e.message),
    };
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let request = match http::Request::post(uri.path())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(bytes)
    {
        Ok(r) => r,
        Err(e) => return Outcome::Retry(e.to_string()),
    };
    let answer = crate::services::outgoing::send(s, &uri, request, TIMEOUT).await;
    match answer {
        // A gateway in a denied address range (`[network]`) is never reached: trying again will
        // not help.
        Err(e @ TransportError::Denied(_)) => {
            tracing::warn!("push gateway {url}: {e}");
            Outcome::Refused(http::StatusCode::FORBIDDEN)
        }
        Err(e) => Outcome::Retry(e.to_string()),
        Ok(response) => classify(response.status(), response.body()),
    }
}

fn classify(status: http::StatusCode, body: &[u8]) -> Outcome {
    if status.is_success() {
        let rejected = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("rejected").and_then(Value::as_array).cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
        Outcome::Accepted { rejected }
    } else if status.is_client_error()
        && status != http::StatusCode::REQUEST_TIMEOUT
        && status != http::StatusCode::TOO_MANY_REQUESTS
    {
        Outcome::Refused(status)
    } else {
        Outcome::Retry(format!("gateway answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_answers_are_classified() {
        match classify(http::StatusCode::OK, br#"{"rejected":["k1"]}"#) {
            Outcome::Accepted { rejected } => assert_eq!(rejected, vec!["k1".to_owned()]),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(classify(http::StatusCode::OK, b""), Outcome::Accepted { rejected } if rejected.is_empty())
        );
        assert!(matches!(
            classify(http::StatusCode::NOT_FOUND, b""),
            Outcome::Refused(_)
        ));
        assert!(matches!(
            classify(http::StatusCode::TOO_MANY_REQUESTS, b""),
            Outcome::Retry(_)
        ));
        assert!(matches!(
            classify(http::StatusCode::BAD_GATEWAY, b""),
            Outcome::Retry(_)
        ));
    }
}
