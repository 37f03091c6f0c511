//! The two push tasks started with the server: the evaluator of the pending events an older
//! version left (once, at start-up) and the delivery worker (sends due queue items to the
//! gateways, several at once, and sleeps until the next retry or a wake-up).
//! Neither is ever awaited by a request.

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;

use super::{
    evaluate,
    gateway::{self, Outcome},
    pushers,
    queue::{self, Item},
};
use crate::services::{Services, rooms};

/// Items sent at once.
const PARALLEL: usize = 16;

/// Starts both tasks; they stop when `stop` changes.
pub fn spawn(services: Arc<Services>, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    let evaluator = tokio::spawn(evaluate_loop(services.clone(), stop.clone()));
    let delivery = tokio::spawn(deliver_loop(services, stop));
    tokio::spawn(async move {
        let _ = evaluator.await;
        let _ = delivery.await;
    })
}

/// Evaluates the `push_pending` entries an older version left (new events are evaluated in
/// their own commit).
async fn evaluate_loop(services: Arc<Services>, _stop: watch::Receiver<bool>) {
    loop {
        match services.run(evaluate::process_pending).await {
            Ok(n) if n == evaluate::BATCH => continue,
            Ok(_) => break,
            Err(e) => {
                tracing::warn!("push evaluation: {e}");
                break;
            }
        }
    }
}

async fn deliver_loop(services: Arc<Services>, mut stop: watch::Receiver<bool>) {
    let wake = services.push.deliver_wake.clone();
    loop {
        let now = crate::util::now_ms();
        let (due, next) = match services.run(move |s| queue::due(s, now, PARALLEL)).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("push queue: {e}");
                (Vec::new(), Some(now + queue::MIN_BACKOFF_MS))
            }
        };
        if !due.is_empty() {
            futures_util::future::join_all(
                due.into_iter()
                    .map(|(seq, item)| deliver(services.clone(), seq, item)),
            )
            .await;
            continue;
        }
        let sleep = next.map_or(Duration::from_secs(3600), |t| {
            Duration::from_millis(t.saturating_sub(now))
        });
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Sends one queue item and records the outcome.
async fn deliver(services: Arc<Services>, seq: u64, item: Item) {
    let prepared = {
        let item = item.clone();
        services
            .run(move |s| {
                let Some(pusher) = s
                    .push
                    .pushers()
                    .get(&item.user, &item.app_id, &item.pushkey)?
                else {
                    return Ok(None);
                };
                let Some(url) = pusher.http().map(|h| h.url.clone()) else {
                    return Ok(None);
                };
                let event = rooms::event_by_id(s, &item.event_id)?;
                let body = gateway::notify_body(s, &item, &pusher, event.as_deref())?;
                Ok(Some((url, body)))
            })
            .await
    };
    let outcome = match prepared {
        // The pusher is gone: nothing to send.
        Ok(None) => None,
        Ok(Some((url, body))) => Some(gateway::post(&services, &url, &body).await),
        Err(e) => Some(Outcome::Retry(e.to_string())),
    };
    let now = crate::util::now_ms();
    let result = services
        .run(move |s| match outcome {
            None | Some(Outcome::Accepted { .. }) | Some(Outcome::Refused(_)) => {
                if let Some(Outcome::Accepted { rejected }) = &outcome
                    && rejected.contains(&item.pushkey)
                {
                    // The gateway no longer knows this pushkey: the pusher is deleted.
                    let mut batch = crate::storage::Batch::new();
                    pushers::delete_ops(
                        &mut batch,
                        item.user.as_str(),
                        &item.app_id,
                        &item.pushkey,
                    );
                    s.push.db.write(batch)?;
                }
                if let Some(Outcome::Refused(status)) = &outcome {
                    tracing::info!(
                        "push gateway of {} refused a notification ({status}); dropped",
                        item.app_id
                    );
                }
                queue::remove(s, seq)
            }
            Some(Outcome::Retry(why)) => {
                tracing::info!(
                    "push to {} for {} failed ({why}); retrying",
                    item.app_id,
                    item.user
                );
                queue::failed(s, seq, item, now)
            }
        })
        .await;
    if let Err(e) = result {
        tracing::warn!("push queue: {e}");
    }
}
