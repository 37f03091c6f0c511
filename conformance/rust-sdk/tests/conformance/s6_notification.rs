//! Scenario 6: the NotificationClient (what Element X runs when a push arrives) resolves a room id and
//! an event id into the sender, its display name, the body and the room's name: once through its own
//! short sliding sync (the notification's room subscription), once through the full path (sliding
//! sync, falling back to /context), for a plain room and for an encrypted one.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, Result, bail, ensure};
use matrix_sdk::ruma::{OwnedEventId, OwnedRoomId, events::room::message::RoomMessageEventContent};
use matrix_sdk_ui::notification_client::{
    NotificationClient, NotificationEvent, NotificationItem, NotificationProcessSetup, NotificationStatus, RawNotificationEvent,
};
use serde_json::{Value, json};

use crate::common::{
    Api, create_encrypted_room, enc, eventually, init_tracing, join_when_invited, login, start_sync, unique,
};

const WAIT: Duration = Duration::from_secs(30);

fn body(item: &NotificationItem) -> Option<String> {
    match &item.raw_event {
        RawNotificationEvent::Timeline(raw) => raw
            .get_field::<Value>("content")
            .ok()
            .flatten()
            .and_then(|c| c["body"].as_str().map(str::to_owned)),
        RawNotificationEvent::Invite(_) => None,
    }
}

fn describe(status: &NotificationStatus) -> String {
    match status {
        NotificationStatus::Event(item) => format!(
            "Event(sender {}, name {:?}, body {:?}, room {:?})",
            item.event.sender(),
            item.sender_display_name,
            body(item),
            item.room_computed_display_name
        ),
        other => format!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s6_notification_client_resolves_event_id_into_sender_and_body() -> Result<()> {
    init_tracing();
    let erin_api = Api::register(&unique("s6erin")).await?;
    let frank_api = Api::register(&unique("s6frank")).await?;
    frank_api
        .put(&format!("/_matrix/client/v3/profile/{}/displayname", enc(&frank_api.user_id)), json!({"displayname": "Frank S6"}))
        .await?;
    let erin = login(&erin_api.localpart, "s6 erin sdk").await?;
    let frank = login(&frank_api.localpart, "s6 frank sdk").await?;
    let (e, f) = (erin.client.clone(), frank.client.clone());
    let erin_sync = Arc::new(start_sync(&e).await?);
    let frank_sync = start_sync(&f).await?;

    // A plain room: frank's message through the plain API, as a push would name it.
    let plain: OwnedRoomId = frank_api
        .create_room(json!({"name": "s6 plain", "preset": "private_chat", "invite": [erin_api.user_id]}))
        .await?
        .try_into()?;
    join_when_invited(&e, &plain).await?;
    let plain_event: OwnedEventId = frank_api.send_text(plain.as_str(), "hello erin, plainly").await?.try_into()?;

    // An encrypted room: frank's SDK sends, erin's keys come through her encryption sync.
    let erin_id = e.user_id().context("erin id")?.to_owned();
    let encrypted = create_encrypted_room(&f, "s6 encrypted", &[&erin_id]).await?;
    let encrypted_id = encrypted.room_id().to_owned();
    join_when_invited(&e, &encrypted_id).await?;
    eventually("frank sees erin joined", WAIT, || async {
        let members = encrypted.members(matrix_sdk::RoomMemberships::JOIN).await.map_err(|e| e.to_string())?;
        if members.len() == 2 { Ok(()) } else { Err(format!("{} joined", members.len())) }
    })
    .await?;
    let sent = encrypted.send(RoomMessageEventContent::text_plain("hello erin, secretly")).await?;
    let encrypted_event = sent.response.event_id;

    let notifications = NotificationClient::new(
        e.clone(),
        NotificationProcessSetup::SingleProcess { sync_service: erin_sync.clone() },
    )
    .await?;
    for (room, event, text, room_name) in [
        (&plain, &plain_event, "hello erin, plainly", "s6 plain"),
        (&encrypted_id, &encrypted_event, "hello erin, secretly", "s6 encrypted"),
    ] {
        // Its own sliding sync alone must find the event (no /context fallback).
        let by_sliding_sync = eventually(&format!("{room_name}: the notification by sliding sync"), WAIT, || async {
            match notifications.get_notification_with_sliding_sync(room, event).await {
                Ok(status @ NotificationStatus::Event(_)) => Ok(status),
                Ok(status) => Err(describe(&status)),
                Err(error) => Err(format!("error {error:?}")),
            }
        })
        .await?;
        // The full path Element X calls.
        let full = notifications.get_notification(room, event).await?;
        for (how, status) in [("sliding sync", &by_sliding_sync), ("get_notification", &full)] {
            let NotificationStatus::Event(item) = status else {
                bail!("{room_name} via {how}: {}", describe(status));
            };
            let seen = describe(status);
            ensure!(item.event.sender().as_str() == frank_api.user_id, "{room_name} via {how}: {seen}");
            ensure!(body(item).as_deref() == Some(text), "{room_name} via {how}: {seen}");
            ensure!(item.sender_display_name.as_deref() == Some("Frank S6"), "{room_name} via {how}: {seen}");
            ensure!(item.room_computed_display_name == room_name, "{room_name} via {how}: {seen}");
            ensure!(item.is_noisy.is_some(), "{room_name} via {how}: push actions not determined: {:?}", item.actions);
        }
    }

    erin_sync.stop().await;
    frank_sync.stop().await;
    Ok(())
}

/// An invite's push names the invite's m.room.member event: the notification is an Invite from frank,
/// with the room's name and the inviter's display name (Element X: "Frank invited you"), both from the
/// invite's stripped state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s6_notification_client_resolves_an_invite_with_the_inviters_name() -> Result<()> {
    init_tracing();
    let erin_api = Api::register(&unique("s6ierin")).await?;
    let frank_api = Api::register(&unique("s6ifrank")).await?;
    frank_api
        .put(&format!("/_matrix/client/v3/profile/{}/displayname", enc(&frank_api.user_id)), json!({"displayname": "Frank S6"}))
        .await?;
    let erin = login(&erin_api.localpart, "s6 erin sdk").await?;
    let e = erin.client.clone();
    let erin_sync = Arc::new(start_sync(&e).await?);

    let room = frank_api.create_room(json!({"name": "s6 invite", "preset": "private_chat"})).await?;
    frank_api
        .post(&format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)), json!({"user_id": erin_api.user_id}))
        .await?;
    let messages = frank_api.get(&format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=10", enc(&room))).await?;
    let invite_event: OwnedEventId = messages["chunk"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == erin_api.user_id.as_str() && e["content"]["membership"] == "invite")
        .and_then(|e| e["event_id"].as_str())
        .context("the invite event in /messages")?
        .try_into()?;
    let room: OwnedRoomId = room.try_into()?;

    let notifications = NotificationClient::new(
        e.clone(),
        NotificationProcessSetup::SingleProcess { sync_service: erin_sync.clone() },
    )
    .await?;
    let status = eventually("the invite's notification", WAIT, || async {
        match notifications.get_notification(&room, &invite_event).await {
            Ok(status @ NotificationStatus::Event(_)) => Ok(status),
            Ok(status) => Err(describe(&status)),
            Err(error) => Err(format!("error {error:?}")),
        }
    })
    .await?;
    let NotificationStatus::Event(item) = &status else { unreachable!() };
    let seen = describe(&status);
    ensure!(matches!(item.event, NotificationEvent::Invite(_)), "not an Invite: {seen}");
    ensure!(item.event.sender().as_str() == frank_api.user_id, "{seen}");
    ensure!(item.room_computed_display_name == "s6 invite", "{seen}");

    // Element X's invite screen: the inviter from the stripped state. The notification client
    // resolved the invite with its own sliding sync; erin's client learns of the room through her
    // main sync, which may come a moment later.
    let inviter = eventually("the invite in erin's own sync, with its inviter", WAIT, || async {
        let invited = e.get_room(&room).ok_or("erin's client does not know the room yet")?;
        let details = invited.invite_details().await.map_err(|e| format!("invite_details: {e}"))?;
        match details.inviter {
            Some(inviter) => Ok(inviter),
            None => Err(format!(
                "invite_details().inviter is None (inviter {}): the stripped state has no m.room.member of the inviter",
                details.inviter_id
            )),
        }
    })
    .await?;
    ensure!(inviter.display_name() == Some("Frank S6"), "the inviter's name: {:?}", inviter.display_name());
    ensure!(item.sender_display_name.as_deref() == Some("Frank S6"), "the invite notification's sender name: {seen}");
    erin_sync.stop().await;
    Ok(())
}
