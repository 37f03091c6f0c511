//! Scenario 2: the RoomListService (simplified sliding sync, MSC4186) of a user in 200 rooms.
//!
//! The rooms are created one after the other through the plain API (names `s2 room 000` … `199`);
//! another user then posts 1 to 3 messages in 10 of them, in a known order. The room list's
//! `all_rooms` entries (what Element X shows) must then hold the 200 rooms, the 10 rooms with messages
//! first, most recent activity first, each with its name, the server's notification count (the
//! number of the other user's messages) and its latest event (the last message); the 190 others
//! after them, most recently created first.

use std::{pin::pin, time::Duration};

use anyhow::{Context, Result, bail, ensure};
use futures_util::StreamExt;
use matrix_sdk::{
    latest_events::LatestEventValue,
    ruma::{
        RoomId,
        api::client::receipt::create_receipt::v3::ReceiptType,
        events::receipt::ReceiptThread,
    },
};
use matrix_sdk_ui::{
    eyeball_im::{Vector, VectorDiff},
    room_list_service::{RoomListItem, filters::new_filter_non_left},
};
use serde_json::{Value, json};
use tokio::time::{Instant, timeout};

use crate::common::{Api, enc, init_tracing, login, start_sync, unique};

const ROOMS: usize = 200;
/// The rooms the other user posts in, in this order (so the last one is the most recent).
const POSTED: [usize; 10] = [17, 150, 3, 99, 42, 180, 7, 121, 64, 199];

/// What the test reads of one room list entry.
#[derive(Debug, PartialEq)]
struct Seen {
    name: String,
    notifications: u64,
    latest_body: Option<String>,
}

fn seen(item: &RoomListItem) -> Seen {
    let latest_body = match item.latest_event() {
        LatestEventValue::Remote(event) => event
            .raw()
            .get_field::<Value>("content")
            .ok()
            .flatten()
            .and_then(|content| content["body"].as_str().map(str::to_owned)),
        _ => None,
    };
    Seen {
        name: item.cached_display_name().map(|n| n.to_string()).unwrap_or_default(),
        notifications: item.unread_notification_counts().notification_count,
        latest_body,
    }
}

fn room_name(index: usize) -> String {
    format!("s2 room {index:03}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_room_list_200_rooms_in_recency_order_with_names_unread_counts_latest_event() -> Result<()> {
    init_tracing();
    let lister = Api::register(&unique("s2lister")).await?;
    let poster = Api::register(&unique("s2poster")).await?;
    poster
        .put(&format!("/_matrix/client/v3/profile/{}/displayname", enc(&poster.user_id)), json!({"displayname": "S2 Poster"}))
        .await?;

    // 200 rooms, one after the other so that their creation order is their recency order.
    let started = Instant::now();
    let mut room_ids = Vec::with_capacity(ROOMS);
    for index in 0..ROOMS {
        let mut body = json!({"name": room_name(index), "preset": "private_chat"});
        if POSTED.contains(&index) {
            body["invite"] = json!([poster.user_id]);
        }
        room_ids.push(lister.create_room(body).await?);
    }
    eprintln!("s2: created {ROOMS} rooms in {:?}", started.elapsed());

    // The other user's messages: room POSTED[k] gets (k % 3) + 1 messages, the last one "last in …".
    for (k, &index) in POSTED.iter().enumerate() {
        poster.join(&room_ids[index]).await?;
        let count = k % 3 + 1;
        for n in 1..count {
            poster.send_text(&room_ids[index], &format!("message {n} in {}", room_name(index))).await?;
        }
        poster.send_text(&room_ids[index], &format!("last in {}", room_name(index))).await?;
        // Distinct origin_server_ts between rooms.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let mut expected: Vec<Seen> = POSTED
        .iter()
        .enumerate()
        .rev()
        .map(|(k, &index)| Seen {
            name: room_name(index),
            notifications: (k % 3 + 1) as u64,
            latest_body: Some(format!("last in {}", room_name(index))),
        })
        .collect();
    let expected_rest: Vec<String> =
        (0..ROOMS).rev().filter(|i| !POSTED.contains(i)).map(room_name).collect();

    // The SDK: login, SyncService, the all_rooms list with the non-left filter (Element X's default).
    let sdk = login(&lister.localpart, "s2 sdk").await?;
    let sync_service = start_sync(&sdk.client).await?;
    let room_list_service = sync_service.room_list_service();
    let all_rooms = room_list_service.all_rooms().await?;
    let (stream, controller) = all_rooms.entries_with_dynamic_adapters(ROOMS + 50);
    controller.set_filter(Box::new(new_filter_non_left()));
    let mut stream = pin!(stream);

    let mut entries: Vector<RoomListItem> = Vector::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let sync_started = Instant::now();
    loop {
        if let Ok(next) = timeout(Duration::from_millis(250), stream.next()).await {
            let diffs = next.context("the room list stream ended")?;
            for diff in diffs {
                diff.apply(&mut entries);
            }
        }
        let now: Vec<Seen> = entries.iter().map(seen).collect();
        let problem = if now.len() != ROOMS {
            format!("{} entries instead of {ROOMS}", now.len())
        } else if now[..POSTED.len()] != expected[..] {
            format!("first entries {:#?}\nexpected {:#?}", &now[..POSTED.len()], expected)
        } else {
            let rest: Vec<&str> = now[POSTED.len()..].iter().map(|s| s.name.as_str()).collect();
            if rest != expected_rest {
                format!("the rooms without messages are not most recently created first: {rest:?}")
            } else {
                String::new()
            }
        };
        if problem.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            sync_service.stop().await;
            bail!("the room list did not settle in 60 s: {problem}");
        }
    }
    eprintln!("s2: room list complete and ordered after {:?}", sync_started.elapsed());
    // Every room's version known from its m.room.create (required_state).
    let unversioned: Vec<String> = entries.iter().filter(|i| i.version().is_none()).map(|i| seen(i).name).collect();
    ensure!(unversioned.is_empty(), "rooms without a known room version (no m.room.create): {unversioned:?}");

    // A new message in a room far down the list brings it to the top.
    let bottom = room_ids[0].clone();
    lister.post(&format!("/_matrix/client/v3/rooms/{}/invite", enc(&bottom)), json!({"user_id": poster.user_id})).await?;
    poster.join(&bottom).await?;
    poster.send_text(&bottom, "wake up room 000").await?;
    expected.insert(
        0,
        Seen { name: room_name(0), notifications: 1, latest_body: Some("wake up room 000".to_owned()) },
    );
    wait_for_head(&mut stream, &mut entries, &expected, "a new message in room 000").await?;

    // A room without a name (a DM): the list names it after the other member (the room's heroes).
    let dm = lister.create_room(json!({"preset": "trusted_private_chat", "is_direct": true, "invite": [poster.user_id]})).await?;
    poster.join(&dm).await?;
    let dm_last = poster.send_text(&dm, "hello from a room without a name").await?;
    expected.insert(
        0,
        Seen { name: "S2 Poster".to_owned(), notifications: 1, latest_body: Some("hello from a room without a name".to_owned()) },
    );
    wait_for_head(&mut stream, &mut entries, &expected, "a message in a room without a name").await?;

    // A read receipt on its last message: its notification count drops to 0, the order stays.
    let dm_room = sdk.client.get_room(<&RoomId>::try_from(dm.as_str())?).context("the DM in the SDK")?;
    dm_room
        .send_single_receipt(ReceiptType::Read, ReceiptThread::Unthreaded, dm_last.as_str().try_into()?)
        .await?;
    expected[0].notifications = 0;
    wait_for_head(&mut stream, &mut entries, &expected, "a read receipt on the DM's last message").await?;

    // Leaving a room: sliding sync tells (the leave in the room's required_state/timeline) and it
    // drops out of the non-left list.
    let leaving = sdk.client.get_room(<&RoomId>::try_from(room_ids[5].as_str())?).context("room 005")?;
    leaving.leave().await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(next) = timeout(Duration::from_millis(250), stream.next()).await {
            for diff in next.context("the room list stream ended")? {
                diff.apply(&mut entries);
            }
        }
        let names: Vec<String> = entries.iter().map(|i| seen(i).name).collect();
        // 200 + the DM − the left one.
        if !names.contains(&room_name(5)) && names.len() == ROOMS {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "after leaving room 005 the list has {} entries, room 005 in it: {}; its state in the SDK: {:?}",
                names.len(),
                names.contains(&room_name(5)),
                leaving.state()
            );
        }
    }
    sync_service.stop().await;
    Ok(())
}

/// Applies the room list's diffs until its first entries are `expected` (30 s at most).
async fn wait_for_head(
    stream: &mut (impl futures_util::Stream<Item = Vec<VectorDiff<RoomListItem>>> + Unpin),
    entries: &mut Vector<RoomListItem>,
    expected: &[Seen],
    after: &str,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(next) = timeout(Duration::from_millis(250), stream.next()).await {
            for diff in next.context("the room list stream ended")? {
                diff.apply(entries);
            }
        }
        let now: Vec<Seen> = entries.iter().take(expected.len()).map(seen).collect();
        if now == expected {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("after {after} the list's head is {now:#?}\nexpected {expected:#?}");
        }
    }
}
