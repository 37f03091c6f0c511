//! Scenario 7 (beyond the six asked for): other things Element X does through the SDK, each a test of
//! its own: typing notices and read receipts through the sliding sync extensions, a favourite tag
//! through the account data extension, an HTTP pusher, and authenticated media.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use matrix_sdk::{
    media::{MediaFormat, MediaRequestParameters},
    ruma::{
        OwnedRoomId,
        api::client::push::{Pusher, PusherIds, PusherInit, PusherKind},
        events::{room::MediaSource, room::message::RoomMessageEventContent},
        push::HttpPusherData,
    },
};
use matrix_sdk_ui::timeline::RoomExt;
use serde_json::json;

use crate::common::{Api, eventually, init_tracing, join_when_invited, login, start_sync, unique, wait_for_message};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s7_typing_notice_and_read_receipt_reach_the_other_user_through_sliding_sync() -> Result<()> {
    init_tracing();
    let alice_api = Api::register(&unique("s7talice")).await?;
    let bob_api = Api::register(&unique("s7tbob")).await?;
    let alice = login(&alice_api.localpart, "s7 alice").await?;
    let bob = login(&bob_api.localpart, "s7 bob").await?;
    let (a, b) = (alice.client.clone(), bob.client.clone());
    let alice_sync = start_sync(&a).await?;
    let bob_sync = start_sync(&b).await?;
    let room: OwnedRoomId = alice_api
        .create_room(json!({"name": "s7 typing", "preset": "private_chat", "invite": [bob_api.user_id]}))
        .await?
        .try_into()?;
    let bob_room = join_when_invited(&b, &room).await?;
    let alice_room = eventually("the room at alice", WAIT, || async { a.get_room(&room).ok_or("not yet".to_owned()) }).await?;

    // Typing (the typing extension): bob types, alice's room sees him typing.
    let (_guard, mut typing) = alice_room.subscribe_to_typing_notifications();
    bob_room.typing_notice(true).await?;
    let bob_id = b.user_id().context("bob id")?.to_owned();
    tokio::time::timeout(WAIT, async {
        loop {
            let users = typing.recv().await?;
            if users.contains(&bob_id) {
                return anyhow::Ok(());
            }
        }
    })
    .await
    .context("alice never saw bob typing (sliding sync typing extension)")??;

    // A read receipt (the receipts extension): alice's message, read by bob, shows bob's receipt on
    // alice's timeline item.
    let alice_timeline = alice_room.timeline().await?;
    alice_room.send(RoomMessageEventContent::text_plain("read me")).await?;
    let bob_timeline = bob_room.timeline().await?;
    let item = wait_for_message(&bob_timeline, "read me", WAIT).await?;
    let event_id = item.event_id().context("remote event id")?.to_owned();
    bob_timeline
        .send_single_receipt(matrix_sdk::ruma::api::client::receipt::create_receipt::v3::ReceiptType::Read, event_id.clone())
        .await?;
    eventually("bob's read receipt on alice's timeline item", WAIT, || async {
        let item = alice_timeline.item_by_event_id(&event_id).await.ok_or("no item")?;
        if item.read_receipts().contains_key(&bob_id) {
            Ok(())
        } else {
            Err(format!("receipts {:?}", item.read_receipts().keys().collect::<Vec<_>>()))
        }
    })
    .await?;
    alice_sync.stop().await;
    bob_sync.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s7_favourite_tag_comes_back_through_the_account_data_extension() -> Result<()> {
    init_tracing();
    let api = Api::register(&unique("s7fav")).await?;
    let sdk = login(&api.localpart, "s7 fav").await?;
    let client = sdk.client.clone();
    let sync = start_sync(&client).await?;
    let room: OwnedRoomId = api.create_room(json!({"name": "s7 favourite"})).await?.try_into()?;
    let sdk_room = eventually("the room", WAIT, || async { client.get_room(&room).ok_or("not yet".to_owned()) }).await?;
    sdk_room.set_is_favourite(true, Some(0.5)).await?;
    eventually("the room tagged m.favourite (room account data in sliding sync)", WAIT, || async {
        if sdk_room.is_favourite() { Ok(()) } else { Err("not favourite".to_owned()) }
    })
    .await?;
    let tags = api.get(&format!("/_matrix/client/v3/user/{}/rooms/{}/tags", crate::common::enc(&api.user_id), crate::common::enc(room.as_str()))).await?;
    ensure!(tags["tags"]["m.favourite"]["order"] == json!(0.5), "GET …/tags: {tags}");
    sync.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s7_http_pusher_registration_as_element_x_does() -> Result<()> {
    init_tracing();
    let api = Api::register(&unique("s7push")).await?;
    let sdk = login(&api.localpart, "s7 push").await?;
    let pusher = Pusher::from(PusherInit {
        ids: PusherIds::new("s7-pushkey-0123456789".to_owned(), "io.element.android".to_owned()),
        kind: PusherKind::Http(HttpPusherData::new("http://127.0.0.1:9/_matrix/push/v1/notify".to_owned())),
        app_display_name: "Element X".to_owned(),
        device_display_name: "s7 push".to_owned(),
        profile_tag: None,
        lang: "en".to_owned(),
    });
    sdk.client.pusher().set(pusher, false).await?;
    let pushers = api.get("/_matrix/client/v3/pushers").await?;
    let listed = &pushers["pushers"][0];
    ensure!(
        listed["pushkey"] == "s7-pushkey-0123456789"
            && listed["app_id"] == "io.element.android"
            && listed["kind"] == "http"
            && listed["data"]["url"] == "http://127.0.0.1:9/_matrix/push/v1/notify",
        "GET /pushers: {pushers}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s7_media_upload_then_authenticated_download() -> Result<()> {
    init_tracing();
    let api = Api::register(&unique("s7media")).await?;
    let sdk = login(&api.localpart, "s7 media").await?;
    let data = b"s7 media bytes \x00\x01\x02".to_vec();
    let uploaded = sdk.client.media().upload(&mime::APPLICATION_OCTET_STREAM, data.clone(), None).await?;
    let request = MediaRequestParameters { source: MediaSource::Plain(uploaded.content_uri.clone()), format: MediaFormat::File };
    let downloaded = sdk.client.media().get_media_content(&request, false).await?;
    ensure!(downloaded == data, "downloaded {} bytes that differ from the {} uploaded", downloaded.len(), data.len());
    Ok(())
}
