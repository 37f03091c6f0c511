//! Fields a client reads without checking that they are there, which ruma leaves out of a
//! response when they are empty (`skip_serializing_if = "…is_empty"`) and Synapse always sends:
//! `Filled` serialises the ruma response, then adds each missing field with its empty value.
//! The fillers are pure functions of the JSON answer.

use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use ruma::api::OutgoingResponseExt;
use serde_json::{Value, json};

use crate::error::Error;

/// A ruma response with the empty fields `fill` adds.
pub struct Filled<T> {
    response: T,
    fill: fn(&mut Value),
}

impl<T> Filled<T> {
    pub fn new(response: T, fill: fn(&mut Value)) -> Self {
        Self { response, fill }
    }
}

impl<T: ruma::api::OutgoingResponse> IntoResponse for Filled<T> {
    fn into_response(self) -> Response {
        let res = match self.response.try_into_http_response::<BytesMut>() {
            Ok(res) => res,
            Err(e) => {
                return Error::internal(format!("response serialisation: {e}")).into_response();
            }
        };
        let (parts, body) = res.into_parts();
        let Ok(mut value) = serde_json::from_slice::<Value>(&body) else {
            return Response::from_parts(parts, axum::body::Body::from(body.freeze()));
        };
        (self.fill)(&mut value);
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        let mut parts = parts;
        parts.headers.remove(http::header::CONTENT_LENGTH);
        Response::from_parts(parts, axum::body::Body::from(bytes))
    }
}

/// Adds `key` with `empty` to `object` when it is missing (a non-object is left alone).
fn ensure(object: &mut Value, key: &str, empty: Value) {
    if let Some(map) = object.as_object_mut() {
        map.entry(key).or_insert(empty);
    }
}

/// The push rule kinds, each a list (`GET /pushrules/global/`; `/pushrules/` fills `global`).
pub const RULE_KINDS: [&str; 5] = ["override", "content", "room", "sender", "underride"];

pub fn ruleset(value: &mut Value) {
    for kind in RULE_KINDS {
        ensure(value, kind, json!([]));
    }
}

pub fn all_rulesets(value: &mut Value) {
    ensure(value, "global", json!({}));
    if let Some(global) = value.get_mut("global") {
        ruleset(global);
    }
}

/// `POST /search`: `room_events` with `results`, `highlights` and `count` even when nothing matches.
pub fn search(value: &mut Value) {
    ensure(value, "search_categories", json!({}));
    let Some(categories) = value.get_mut("search_categories") else {
        return;
    };
    ensure(categories, "room_events", json!({}));
    let Some(room_events) = categories.get_mut("room_events") else {
        return;
    };
    ensure(room_events, "results", json!([]));
    ensure(room_events, "highlights", json!([]));
    let count = room_events
        .get("results")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    ensure(room_events, "count", json!(count));
}

/// `GET /rooms/{roomId}/context/{eventId}`: `events_before`, `events_after` and `state`.
pub fn context(value: &mut Value) {
    for key in ["events_before", "events_after", "state"] {
        ensure(value, key, json!([]));
    }
}

/// A room summary: `join_rule` (ruma leaves out `public`, the default of the spec's summary).
pub fn room_summary(value: &mut Value) {
    ensure(value, "join_rule", json!("public"));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn empty_search_gets_results_highlights_and_count() {
        let mut v = json!({ "search_categories": {} });
        super::search(&mut v);
        assert_eq!(
            v,
            json!({ "search_categories": { "room_events": { "results": [], "highlights": [], "count": 0 } } })
        );
        let mut v = json!({ "search_categories": { "room_events": { "results": [{}, {}], "next_batch": "x" } } });
        super::search(&mut v);
        assert_eq!(v["search_categories"]["room_events"]["count"], 2);
        assert_eq!(v["search_categories"]["room_events"]["next_batch"], "x");
    }

    #[test]
    fn rulesets_get_every_kind_and_keep_rules() {
        let mut v = json!({ "global": { "override": [{ "rule_id": ".m.rule.master" }] } });
        super::all_rulesets(&mut v);
        assert_eq!(v["global"]["override"][0]["rule_id"], ".m.rule.master");
        for kind in super::RULE_KINDS {
            assert!(v["global"][kind].is_array(), "{kind}");
        }
        let mut v = json!({});
        super::ruleset(&mut v);
        assert_eq!(v["sender"], json!([]));
    }

    #[test]
    fn context_fields_are_filled_without_touching_others() {
        let mut v = json!({ "event": { "event_id": "$a" }, "events_after": [1] });
        super::context(&mut v);
        assert_eq!(
            v,
            json!({ "event": { "event_id": "$a" }, "events_before": [], "events_after": [1], "state": [] })
        );
    }
}
