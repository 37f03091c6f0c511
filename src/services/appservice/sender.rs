//! One task per application service with a URL: sends its queued events as transactions
//! (`PUT {url}/_matrix/app/v1/transactions/{txnId}`, `Authorization: Bearer <hs_token>`), in
//! order, one transaction at a time; after a failure it waits (1 s, doubling up to 5 minutes)
//! and sends the same transaction again. A service that is down only delays its own queue.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};
use tokio::sync::watch;

use super::queue::{self, Queued};
use crate::services::{Services, rooms::event_by_short, timeline::pdu::ClientFormat};

const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Time limit of one transaction.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Starts a sender for each service with a URL; they stop when `stop` changes.
pub fn spawn(
    services: Arc<Services>,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    services
        .appservices
        .all()
        .iter()
        .filter(|a| a.registration.url.is_some())
        .map(|a| {
            tokio::spawn(run(
                services.clone(),
                a.registration.id.clone(),
                stop.clone(),
            ))
        })
        .collect()
}

/// A transaction to send: its id, its timeline events (position, short event) and ephemeral
/// events.
type Txn = (String, Vec<(u64, Queued)>, Vec<Value>);

async fn run(services: Arc<Services>, id: String, mut stop: watch::Receiver<bool>) {
    let Some(wake) = services.appservices.wake_of(&id) else {
        return;
    };
    let msc3202 = services.appservices.by_id(&id).is_some_and(|a| a.msc3202);
    let mut backoff = MIN_BACKOFF;
    // Transactions of ephemeral events (or device list changes) alone are named `e<start-up time>.<n>`: unique across
    // restarts, and never a timeline transaction's number.
    let boot = crate::util::now_ms();
    let mut ephemeral_txns = 0u64;
    // The transaction being sent, kept for its retries (its ephemeral events are only here).
    let mut carried: Option<Txn> = None;
    loop {
        let txn = match carried.take() {
            Some(txn) if txn.1.is_empty() => Ok(Some(txn)),
            kept => {
                let lookup = id.clone();
                services
                    .run(move |s| queue::next_txn(s, &lookup))
                    .await
                    .map(|next| match next {
                        Some((first, events)) => {
                            let txn_id = first.to_string();
                            let ephemeral = match kept {
                                Some((kept_id, _, ephemeral)) if kept_id == txn_id => ephemeral,
                                _ => take_ephemeral(&services, &id),
                            };
                            Some((txn_id, events, ephemeral))
                        }
                        None => {
                            let ephemeral = take_ephemeral(&services, &id);
                            (!ephemeral.is_empty()).then(|| {
                                ephemeral_txns += 1;
                                (format!("e{boot}.{ephemeral_txns}"), Vec::new(), ephemeral)
                            })
                        }
                    })
            }
        };
        // Nothing queued: device list changes alone make a transaction too (MSC3202).
        let txn = match txn {
            Ok(None) if msc3202 && device_lists_changed(&services, &id).await => {
                ephemeral_txns += 1;
                Ok(Some((
                    format!("e{boot}.{ephemeral_txns}"),
                    Vec::new(),
                    Vec::new(),
                )))
            }
            other => other,
        };
        let pause = match txn {
            Ok(None) => None,
            Ok(Some(txn)) => match send(&services, &id, &txn).await {
                Ok(lists_to) => {
                    let done = id.clone();
                    let events = txn.1.clone();
                    match services
                        .run(move |s| {
                            queue::acknowledged(s, &done, &events)?;
                            match lists_to {
                                Some(to) => super::device_lists::advance(s, &done, to),
                                None => Ok(()),
                            }
                        })
                        .await
                    {
                        Ok(()) => {
                            backoff = MIN_BACKOFF;
                            continue;
                        }
                        Err(e) => {
                            carried = Some(txn);
                            Some(e.message)
                        }
                    }
                }
                Err(why) => {
                    carried = Some(txn);
                    Some(why)
                }
            },
            Err(e) => Some(e.message),
        };
        let waiting = pause.is_none();
        let sleep = match pause {
            // Device list changes are looked for every few seconds (they do not wake the sender).
            None if msc3202 => DEVICE_LISTS_EVERY,
            None => Duration::MAX,
            Some(why) => {
                tracing::info!(
                    "application service {id}: transaction not delivered ({why}); again in {backoff:?}"
                );
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
        };
        tokio::select! {
            _ = wake.notified(), if waiting => {}
            _ = tokio::time::sleep(sleep.min(Duration::from_secs(3600))) => {}
            _ = stop.changed() => return,
        }
    }
}

/// How often a service with `org.matrix.msc3202` is checked for device list changes when nothing
/// else is queued for it.
const DEVICE_LISTS_EVERY: Duration = Duration::from_secs(5);

/// Whether device lists changed that concern the service since its cursor.
async fn device_lists_changed(services: &Arc<Services>, id: &str) -> bool {
    let id = id.to_owned();
    services
        .run(move |s| {
            let Some(appservice) = s.appservices.by_id(&id) else {
                return Ok(false);
            };
            Ok(!super::device_lists::pending(s, appservice)?
                .changed
                .is_empty())
        })
        .await
        .unwrap_or(false)
}

fn take_ephemeral(services: &Services, id: &str) -> Vec<Value> {
    services
        .appservices
        .take_ephemeral(id, super::ephemeral::MAX_TXN_EPHEMERAL)
}

/// Sends one transaction; `Ok` holds the position its device list changes run to (MSC3202), `Err`
/// says why it must be sent again.
async fn send(
    services: &Arc<Services>,
    id: &str,
    (txn, events, ephemeral): &Txn,
) -> Result<Option<u64>, String> {
    let Some(appservice) = services.appservices.by_id(id) else {
        return Err("unknown application service".into());
    };
    let entries = events.clone();
    let lists_for = appservice.msc3202.then(|| id.to_owned());
    let (body, to_device, lists) = services
        .run(move |s| {
            let mut out = Vec::new();
            let mut to_device = Vec::new();
            for (pos, entry) in entries {
                match entry {
                    Queued::Event(short) => {
                        let room_id = match s.timeline.meta(short)? {
                            Some(meta) => s.short.room_id(meta.short_room)?,
                            None => continue,
                        };
                        if let Some(event) = event_by_short(s, short, &room_id)? {
                            out.push(event.to_client(&s.timeline, ClientFormat::Room, None)?);
                        }
                    }
                    Queued::ToDevice { user, device } => {
                        let key = crate::services::to_device::message_key(&user, &device, pos);
                        if let Some(raw) = s
                            .globals
                            .db
                            .get(crate::services::to_device::TO_DEVICE, &key)?
                            && let Ok(mut message) = serde_json::from_slice::<Value>(&raw)
                        {
                            message["to_user_id"] = json!(user);
                            message["to_device_id"] = json!(device);
                            to_device.push(message);
                        }
                    }
                }
            }
            let lists = match lists_for.as_deref().and_then(|id| s.appservices.by_id(id)) {
                None => None,
                Some(appservice) => {
                    let changes = super::device_lists::pending(s, appservice)?;
                    let mut devices =
                        super::device_lists::devices_of(s, appservice, &changes.changed)?;
                    for message in &to_device {
                        if let (Some(user), Some(device)) = (
                            message["to_user_id"]
                                .as_str()
                                .and_then(|u| ruma::OwnedUserId::try_from(u).ok()),
                            message["to_device_id"].as_str(),
                        ) {
                            devices.insert((user, device.to_owned()));
                        }
                    }
                    let (counts, fallbacks) =
                        super::device_lists::key_counts(s, appservice, &devices)?;
                    let mut changes = changes;
                    let left = super::device_lists::left(s, appservice, &out)?;
                    changes.changed.retain(|u| !left.contains(u));
                    Some((changes, left, counts, fallbacks))
                }
            };
            Ok((out, to_device, lists))
        })
        .await
        .map_err(|e| e.message)?;
    let mut body = json!({ "events": body, "ephemeral": ephemeral });
    if appservice.push_ephemeral {
        // The unstable name, which frameworks written before MSC2409 was merged read.
        body["de.sorunome.msc2409.ephemeral"] = json!(ephemeral);
    }
    if !to_device.is_empty() {
        // MSC4203, under its stable and its unstable name.
        body["de.sorunome.msc2409.to_device"] = json!(to_device);
        body["to_device"] = json!(to_device);
    }
    let mut lists_to = None;
    if let Some((changes, left, counts, fallbacks)) = lists {
        if !changes.changed.is_empty() || !left.is_empty() {
            body["org.matrix.msc3202.device_lists"] =
                json!({ "changed": changes.changed, "left": left });
        }
        if counts.as_object().is_some_and(|c| !c.is_empty()) {
            body["org.matrix.msc3202.device_one_time_keys_count"] = counts;
            body["org.matrix.msc3202.device_unused_fallback_key_types"] = fallbacks;
        }
        lists_to = Some(changes.to);
    }
    let answer = super::client::call(
        services,
        appservice,
        http::Method::PUT,
        &format!("transactions/{txn}"),
        Some(&body),
        TIMEOUT,
    )
    .await
    .map_err(|e| e.to_string())?;
    if answer.status().is_success() {
        return Ok(lists_to);
    }
    let detail = serde_json::from_slice::<Value>(answer.body())
        .ok()
        .and_then(|v| v.get("errcode").cloned())
        .unwrap_or(Value::Null);
    Err(format!("answered {} {detail}", answer.status()))
}
