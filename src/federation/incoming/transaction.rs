//! `PUT /_matrix/federation/v1/send/{txnId}`: transactions of one origin are processed one at a
//! time and at most once (the answer is stored under origin ‖ txn id and given again).

use std::sync::Arc;

use ruma::{CanonicalJsonObject, ServerName};
use serde_json::{Map, Value, json};

use super::{edus, missing, pdu_checks, persist};
use crate::{
    error::{Error, Result},
    federation::sender::queue::{MAX_EDUS, MAX_PDUS},
    services::{Services, timeline::append::Forward},
    storage::{Map as DbMap, keys::Key},
};

/// origin str ‖ txn id str → the answer JSON (pruned after a day: `txn_expiry`).
pub const TXNS: DbMap = DbMap("federation_txns");

/// Checks the envelope of a transaction (pure): origin, sizes.
pub fn check_envelope(origin: &ServerName, body: &Value) -> Result<(Vec<Value>, Vec<Value>)> {
    if let Some(claimed) = body.get("origin").and_then(Value::as_str)
        && claimed != origin.as_str()
    {
        return Err(Error::forbidden(format!(
            "transaction origin {claimed} is not the signing server {origin}"
        )));
    }
    let pdus = body
        .get("pdus")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let edus = body
        .get("edus")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if pdus.len() > MAX_PDUS || edus.len() > MAX_EDUS {
        return Err(Error::bad_json(format!(
            "a transaction carries at most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs"
        )));
    }
    Ok((pdus, edus))
}

pub async fn handle(
    services: &Arc<Services>,
    origin: &ServerName,
    txn_id: &str,
    body: &Value,
) -> Result<Value> {
    let (pdus, edus) = check_envelope(origin, body)?;
    let lock = services.federation.origin_lock(origin);
    let _guard = lock.lock().await;
    let key = Key::new().str(origin.as_str()).str(txn_id).build();
    let k = key.clone();
    if let Some(done) = services
        .run(move |s| Ok(s.globals.db.get(TXNS, &k)?))
        .await?
    {
        return Ok(serde_json::from_slice(&done).unwrap_or_else(|_| json!({ "pdus": {} })));
    }
    let mut results = Map::new();
    for raw in pdus {
        let Ok(object) = serde_json::from_value::<CanonicalJsonObject>(raw) else {
            continue;
        };
        match handle_pdu(services, origin, object).await {
            Ok(None) => {}
            Ok(Some(event_id)) => {
                results.insert(event_id, json!({}));
            }
            Err((Some(event_id), e)) => {
                tracing::info!("PDU {event_id} from {origin} refused: {}", e.message);
                results.insert(event_id, json!({ "error": e.message }));
            }
            Err((None, e)) => tracing::info!("PDU from {origin} refused: {}", e.message),
        }
    }
    let origin_owned = origin.to_owned();
    services
        .run(move |s| {
            for edu in &edus {
                if let Err(e) = edus::apply(s, &origin_owned, edu) {
                    tracing::info!("EDU from {origin_owned} refused: {}", e.message);
                }
            }
            Ok(())
        })
        .await?;
    let answer = json!({ "pdus": results });
    let bytes = serde_json::to_vec(&answer).unwrap_or_default();
    services
        .run(move |s| super::txn_expiry::record(s, key, bytes, crate::util::now_ms()))
        .await?;
    Ok(answer)
}

/// Checks and appends one PDU; returns its event id (None when it names no room we know or none
/// of our users is joined to).
async fn handle_pdu(
    services: &Arc<Services>,
    origin: &ServerName,
    object: CanonicalJsonObject,
) -> std::result::Result<Option<String>, (Option<String>, Error)> {
    let room_id = pdu_checks::room_id_of(&object).map_err(|e| (None, e))?;
    let room = room_id.clone();
    let origin_owned = origin.to_owned();
    let (version, origin_in_room) = services
        .run(move |s| {
            let Some(version) = s.timeline.room_version(&room)? else {
                return Ok((None, false));
            };
            let short = crate::services::rooms::short_room(s, &room)?;
            // A room none of our users is joined to (left, or only invited): its events are not
            // ours to keep; a rejoin takes the room's state from the join.
            if !crate::federation::sender::joined_here(s, short)? {
                return Ok((None, false));
            }
            let in_room = crate::federation::sender::servers_in_room(s, short)?
                .contains(&origin_owned)
                && crate::federation::acl::allowed(s, &room, &origin_owned)?;
            Ok((Some(version), in_room))
        })
        .await
        .map_err(|e| (None, e))?;
    let Some(version) = version else {
        return Ok(None);
    };
    let rules = crate::services::rooms::version::rules(&version).map_err(|e| (None, e))?;
    let event_id = pdu_checks::event_id_of(&object, &rules).map_err(|e| (None, e))?;
    let id = event_id.to_string();
    if !origin_in_room {
        return Err((
            Some(id),
            Error::forbidden(format!(
                "{origin} is not in room {room_id} (or denied by its server ACL)"
            )),
        ));
    }
    let checked = pdu_checks::check_pdu(services, object, room_id.clone(), version.clone())
        .await
        .map_err(|e| (Some(id.clone()), e))?;
    if let Err(e) = super::partial_auth::fetch_unknown_auth_events(
        services, origin, &room_id, &version, &checked,
    )
    .await
    {
        tracing::info!("event_auth of {id} from {origin}: {}", e.message);
    }
    let prevs = checked.pdu.prev_events.clone();
    let missing = services
        .run(move |s| persist::missing_prev_events(s, &prevs))
        .await
        .map_err(|e| (Some(id.clone()), e))?;
    let mut given_before = None;
    if !missing.is_empty() {
        if let Err(e) =
            missing::fetch_missing(services, origin, &room_id, &version, &checked.event_id).await
        {
            tracing::info!("get_missing_events from {origin}: {}", e.message);
        }
        let prevs = checked.pdu.prev_events.clone();
        let still = services
            .run(move |s| persist::missing_prev_events(s, &prevs))
            .await
            .map_err(|e| (Some(id.clone()), e))?;
        if !still.is_empty() {
            // The gap stays: take the state before the event from the origin.
            let before =
                missing::state_from_origin(services, origin, &room_id, &version, &checked.event_id)
                    .await
                    .map_err(|e| (Some(id.clone()), e))?;
            given_before = Some(before);
        }
    }
    services
        .run_heavy(move |s| {
            persist::append_remote_at(s, checked, Forward::None, false, given_before)
        })
        .await
        .map_err(|e| (Some(id.clone()), e))?;
    Ok(Some(event_id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> ruma::OwnedServerName {
        "a.example".try_into().unwrap()
    }

    #[test]
    fn envelope_of_the_signing_server_passes() {
        let (pdus, edus) = check_envelope(
            &origin(),
            &json!({ "origin": "a.example", "pdus": [{}], "edus": [] }),
        )
        .unwrap();
        assert_eq!((pdus.len(), edus.len()), (1, 0));
    }

    #[test]
    fn envelope_of_another_origin_is_forbidden() {
        let e =
            check_envelope(&origin(), &json!({ "origin": "b.example", "pdus": [] })).unwrap_err();
        assert_eq!(e.errcode, "M_FORBIDDEN");
    }

    #[test]
    fn too_many_pdus_or_edus_are_refused() {
        let pdus: Vec<Value> = (0..51).map(|_| json!({})).collect();
        assert_eq!(
            check_envelope(&origin(), &json!({ "pdus": pdus }))
                .unwrap_err()
                .errcode,
            "M_BAD_JSON"
        );
        let edus: Vec<Value> = (0..101).map(|_| json!({})).collect();
        assert_eq!(
            check_envelope(&origin(), &json!({ "edus": edus }))
                .unwrap_err()
                .errcode,
            "M_BAD_JSON"
        );
        let pdus: Vec<Value> = (0..50).map(|_| json!({})).collect();
        assert!(check_envelope(&origin(), &json!({ "pdus": pdus })).is_ok());
    }
}
