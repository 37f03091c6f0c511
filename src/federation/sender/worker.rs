//! The sending workers: a supervisor started with the server, one task per destination. A task
//! sends the oldest queued items as one transaction, deletes them when the destination answers
//! 200, and otherwise waits (2 s, doubling, at most [`MAX_BACKOFF`]) unless the destination
//! contacts us first.

use std::{collections::HashMap, sync::Arc, time::Duration};

use ruma::{OwnedServerName, ServerName};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::{Wake, queue::Item};
use crate::{
    error::{Error, Result},
    federation::request::send_json,
    services::Services,
};

pub const MIN_BACKOFF: Duration = Duration::from_secs(2);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Runs until `stop` changes: starts a worker for every destination with queued items, and one
/// for each destination woken later.
pub async fn supervise(
    services: Arc<Services>,
    mut rx: mpsc::UnboundedReceiver<Wake>,
    mut stop: watch::Receiver<bool>,
) {
    let mut workers: HashMap<
        OwnedServerName,
        (mpsc::UnboundedSender<bool>, tokio::task::JoinHandle<()>),
    > = HashMap::new();
    let pending = services
        .run(|s| s.federation.sender.pending_destinations())
        .await
        .unwrap_or_default();
    let start =
        |workers: &mut HashMap<_, (mpsc::UnboundedSender<bool>, tokio::task::JoinHandle<()>)>,
         dest: OwnedServerName,
         peer_back: bool| {
            let entry = workers.entry(dest.clone()).or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                let task = tokio::spawn(destination_worker(services.clone(), dest, rx));
                (tx, task)
            });
            let _ = entry.0.send(peer_back);
        };
    for dest in pending {
        start(&mut workers, dest, false);
    }
    loop {
        tokio::select! {
            wake = rx.recv() => match wake {
                Some(Wake::Queued(dest)) => start(&mut workers, dest, false),
                Some(Wake::PeerBack(dest)) => {
                    // Only destinations with a worker can have something to retry.
                    if let Some((tx, _)) = workers.get(&dest) {
                        let _ = tx.send(true);
                    }
                }
                None => break,
            },
            _ = stop.changed() => break,
        }
    }
    for (_, (_, task)) in workers {
        task.abort();
    }
}

async fn destination_worker(
    services: Arc<Services>,
    dest: OwnedServerName,
    mut wake: mpsc::UnboundedReceiver<bool>,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let name = dest.clone();
        let batch = match services
            .run(move |s| s.federation.sender.next_batch(&name))
            .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("federation queue for {dest}: {e}");
                Vec::new()
            }
        };
        if batch.is_empty() {
            if wake.recv().await.is_none() {
                return;
            }
            continue;
        }
        match send_transaction(&services, &dest, &batch).await {
            Ok(()) => {
                backoff = MIN_BACKOFF;
                let seqs: Vec<u64> = batch.iter().map(|(seq, _)| *seq).collect();
                let name = dest.clone();
                if let Err(e) = services
                    .run(move |s| s.federation.sender.acknowledge(&name, &seqs))
                    .await
                {
                    tracing::warn!("federation queue for {dest}: {e}");
                }
            }
            Err(e) => {
                tracing::info!("transaction to {dest} failed ({e}); retrying in {backoff:?}");
                services.metrics.federation_send_failed(dest.as_str());
                let (name, cap) = (
                    dest.clone(),
                    services.config().federation.max_queued_per_destination,
                );
                if let Err(e) = services
                    .run(move |s| s.federation.sender.trim(&name, cap))
                    .await
                {
                    tracing::warn!("federation queue for {dest}: {e}");
                }
                let sleep = tokio::time::sleep(backoff);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        woken = wake.recv() => match woken {
                            Some(true) => break,
                            Some(false) => continue,
                            None => return,
                        },
                    }
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// The transaction id of a batch: the same items give the same id, so a retry is idempotent.
pub fn transaction_id(batch: &[(u64, Item)]) -> String {
    let first = batch.first().map_or(0, |(s, _)| *s);
    let last = batch.last().map_or(0, |(s, _)| *s);
    format!("{first}-{last}-{}", batch.len())
}

async fn send_transaction(
    services: &Arc<Services>,
    dest: &ServerName,
    batch: &[(u64, Item)],
) -> Result<()> {
    let items = batch.to_vec();
    let (pdus, edus) = services
        .run(move |s| {
            let mut pdus = Vec::new();
            let mut edus = Vec::new();
            for (_, item) in items {
                match item {
                    Item::Pdu(event_id) => {
                        let Some(short) = s.short.event(&event_id)? else {
                            continue;
                        };
                        if let Some(json) = s.timeline.json(short)? {
                            pdus.push(serde_json::to_value(json).unwrap_or(Value::Null));
                        }
                    }
                    Item::Edu(edu) => edus.push(edu),
                }
            }
            Ok((pdus, edus))
        })
        .await?;
    let body = json!({
        "origin": services.globals.server_name().as_str(),
        "origin_server_ts": crate::util::now_ms(),
        "pdus": pdus,
        "edus": edus,
    });
    let path = format!("/_matrix/federation/v1/send/{}", transaction_id(batch));
    let (status, answer) = send_json(services, dest, http::Method::PUT, &path, Some(&body)).await?;
    if status.is_success() {
        Ok(())
    } else if status == http::StatusCode::BAD_REQUEST
        || status == http::StatusCode::PAYLOAD_TOO_LARGE
    {
        // The destination will never take this transaction: dropped, so that it does not block
        // everything queued after it.
        tracing::warn!(
            "{dest} refused transaction {} for good ({status}: {answer}); dropped",
            transaction_id(batch)
        );
        Ok(())
    } else {
        Err(Error::internal(format!(
            "{dest} answered {status}: {answer}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retried_batch_keeps_its_transaction_id() {
        let batch = vec![(7, Item::Edu(json!({}))), (9, Item::Edu(json!({})))];
        assert_eq!(transaction_id(&batch), "7-9-2");
        assert_eq!(transaction_id(&batch.clone()), transaction_id(&batch));
        assert_ne!(transaction_id(&batch[..1]), transaction_id(&batch));
    }
}
