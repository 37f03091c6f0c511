//! Scenario 3: the Timeline of a room with 60 messages, read back to the room's creation by backwards
//! pagination (/messages), with a reaction (m.annotation), an edit (m.replace), a reply
//! (m.in_reply_to) and a thread (m.thread) set up through the plain API; then a reaction and an edit
//! sent through the Timeline itself, coming back from the server as remote ones.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, Result, bail, ensure};
use matrix_sdk::{
    room::edit::EditedContent,
    ruma::{OwnedEventId, RoomId, events::room::message::RoomMessageEventContentWithoutRelation},
};
use matrix_sdk_ui::{
    eyeball_im::Vector,
    timeline::{
        EventTimelineItem, MsgLikeKind, ReactionStatus, RoomExt, ThreadListService, Timeline, TimelineBuilder,
        TimelineDetails, TimelineFocus, TimelineItem, VirtualTimelineItem,
    },
};
use serde_json::json;

use crate::common::{Api, eventually, init_tracing, login, start_sync, unique};

const MESSAGES: usize = 60;

fn find<'a>(items: &'a Vector<Arc<TimelineItem>>, event_id: &str) -> Option<&'a EventTimelineItem> {
    items.iter().filter_map(|i| i.as_event()).find(|e| e.event_id().map(|id| id.as_str()) == Some(event_id))
}

fn body(item: &EventTimelineItem) -> Option<String> {
    item.content().as_message().map(|m| m.body().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_timeline_back_paginates_to_start_with_reactions_edits_replies_threads() -> Result<()> {
    init_tracing();
    let alice = Api::register(&unique("s3alice")).await?;
    let bob = Api::register(&unique("s3bob")).await?;
    let room = alice
        .create_room(json!({"name": "s3 timeline", "preset": "private_chat", "invite": [bob.user_id]}))
        .await?;
    bob.join(&room).await?;

    let mut ids = Vec::with_capacity(MESSAGES);
    for n in 0..MESSAGES {
        let sender = if n % 2 == 0 { &alice } else { &bob };
        ids.push(sender.send_text(&room, &format!("m{n:02}")).await?);
    }
    // m10: 👍 from bob, 🎉 from alice.
    for (who, key) in [(&bob, "👍"), (&alice, "🎉")] {
        who.send_event(&room, "m.reaction", json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": ids[10], "key": key}}))
            .await?;
    }
    // m20 (alice's) edited by alice.
    alice
        .send_event(&room, "m.room.message", json!({
            "msgtype": "m.text", "body": "* m20 edited",
            "m.new_content": {"msgtype": "m.text", "body": "m20 edited"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": ids[20]},
        }))
        .await?;
    // A reply from bob to m30.
    let reply = bob
        .send_event(&room, "m.room.message", json!({
            "msgtype": "m.text", "body": "reply to m30",
            "m.relates_to": {"m.in_reply_to": {"event_id": ids[30]}},
        }))
        .await?;
    // A thread on m40: two replies.
    let mut thread_replies = Vec::new();
    for (who, text) in [(&bob, "thread reply 1"), (&alice, "thread reply 2")] {
        thread_replies.push(
            who.send_event(&room, "m.room.message", json!({
                "msgtype": "m.text", "body": text,
                "m.relates_to": {"rel_type": "m.thread", "event_id": ids[40], "is_falling_back": true,
                                  "m.in_reply_to": {"event_id": ids[40]}},
            }))
            .await?,
        );
    }

    // m50 (alice's) redacted.
    alice
        .put(&format!("/_matrix/client/v3/rooms/{}/redact/{}/r50", crate::common::enc(&room), crate::common::enc(&ids[50])), json!({"reason": "s3"}))
        .await?;

    // The SDK, as alice: sync (the room list gives 1 event of the room), then the room's timeline.
    let sdk = login(&alice.localpart, "s3 sdk").await?;
    let sync_service = start_sync(&sdk.client).await?;
    let room_id = <&RoomId>::try_from(room.as_str())?.to_owned();
    let client = sdk.client.clone();
    let sdk_room = eventually("the room in the SDK's sync", Duration::from_secs(30), || {
        let client = client.clone();
        let room_id = room_id.clone();
        async move { client.get_room(&room_id).ok_or_else(|| "not yet".to_owned()) }
    })
    .await?;
    let timeline: Timeline = sdk_room.timeline().await?;

    let mut reached_start = false;
    for _ in 0..20 {
        if timeline.paginate_backwards(20).await? {
            reached_start = true;
            break;
        }
    }
    ensure!(reached_start, "paginate_backwards never reached the start of the room");
    // The timeline applies the event cache's updates in a task of its own: the last page may show
    // a moment after paginate_backwards returned.
    let checked = eventually("the timeline's items as expected", Duration::from_secs(10), || async {
        let items = timeline.items().await;
        check(&timeline, &items, &ids, &reply, &thread_replies).await.map_err(|e| format!("{e:#}"))
    })
    .await;
    let items = timeline.items().await;
    if checked.is_err() {
        eprintln!("s3 timeline items:");
        for item in items.iter() {
            eprintln!("  {item:?}");
        }
    }
    checked?;

    // The thread list (GET /rooms/{roomId}/threads) and a thread-focused timeline (/relations).
    let threads = ThreadListService::new(sdk_room.clone());
    threads.paginate().await?;
    let list = threads.items();
    ensure!(list.len() == 1, "the thread list holds {} threads: {list:?}", list.len());
    let thread = &list[0];
    ensure!(thread.root_event.event_id.as_str() == ids[40], "the thread's root: {}", thread.root_event.event_id);
    ensure!(thread.num_replies == 2, "the thread list counts {} replies", thread.num_replies);
    let latest = thread.latest_event.as_ref().and_then(|e| e.content.as_ref()).and_then(|c| c.as_message()).map(|m| m.body().to_owned());
    ensure!(latest.as_deref() == Some("thread reply 2"), "the thread's latest event: {latest:?}");
    let thread_timeline = TimelineBuilder::new(&sdk_room)
        .with_focus(TimelineFocus::Thread { root_event_id: ids[40].as_str().try_into()? })
        .build()
        .await?;
    for _ in 0..5 {
        if thread_timeline.paginate_backwards(20).await? {
            break;
        }
    }
    eventually("the thread's timeline: root and both replies", Duration::from_secs(10), || async {
        let bodies: Vec<String> = thread_timeline.items().await.iter().filter_map(|i| i.as_event()).filter_map(body).collect();
        if bodies == ["m40", "thread reply 1", "thread reply 2"] { Ok(()) } else { Err(format!("{bodies:?}")) }
    })
    .await?;

    // Through the Timeline: a ❤️ reaction on m11 and an edit of m12 (alice's), both come back remote.
    let m11 = find(&items, &ids[11]).context("m11")?.identifier();
    let m12 = find(&items, &ids[12]).context("m12")?.identifier();
    timeline.toggle_reaction(&m11, "❤️").await?;
    timeline
        .edit(&m12, EditedContent::RoomMessage(RoomMessageEventContentWithoutRelation::text_plain("m12 edited by the sdk")))
        .await?;
    let (m11_id, m12_id) = (ids[11].clone(), ids[12].clone());
    let own = alice.user_id.clone();
    eventually("the SDK's reaction and edit echoed back by the server", Duration::from_secs(30), || {
        let timeline = &timeline;
        let (m11_id, m12_id, own) = (m11_id.clone(), m12_id.clone(), own.clone());
        async move {
            let items = timeline.items().await;
            let m11 = find(&items, &m11_id).ok_or("m11 gone")?;
            let remote = m11
                .content()
                .reactions()
                .and_then(|r| r.get("❤️"))
                .and_then(|by_sender| by_sender.iter().find(|(s, _)| s.as_str() == own))
                .map(|(_, info)| matches!(info.status, ReactionStatus::RemoteToRemote(_)));
            let m12 = find(&items, &m12_id).ok_or("m12 gone")?;
            let edited = body(m12).as_deref() == Some("m12 edited by the sdk") && m12.content().as_message().is_some_and(|m| m.is_edited());
            if remote == Some(true) && edited && m12.latest_edit_json().is_some() {
                Ok(())
            } else {
                Err(format!("m11 ❤️ remote: {remote:?}; m12: {:?}", m12.content()))
            }
        }
    })
    .await?;
    // And the server aggregates the edit: /event of m12 bundles m.replace (spec: "Server-side aggregation").
    let m12_json = alice.event(&room, &ids[12]).await?;
    ensure!(
        !m12_json["unsigned"]["m.relations"]["m.replace"].is_null(),
        "GET /rooms/…/event/m12 has no unsigned.m.relations.m.replace after an edit: {m12_json}"
    );
    sync_service.stop().await;
    Ok(())
}

async fn check(
    timeline: &Timeline,
    items: &Vector<Arc<TimelineItem>>,
    ids: &[String],
    reply: &str,
    thread_replies: &[String],
) -> Result<()> {
    // The start: a TimelineStart virtual item, then the room's creation.
    let first_event = items.iter().position(|i| i.as_event().is_some()).context("no event item")?;
    ensure!(
        items.iter().take(first_event).any(|i| matches!(i.as_virtual(), Some(VirtualTimelineItem::TimelineStart))),
        "no TimelineStart item before the first event"
    );
    let first_type = items[first_event]
        .as_event()
        .and_then(|e| e.original_json())
        .and_then(|raw| raw.get_field::<String>("type").ok().flatten());
    ensure!(first_type.as_deref() == Some("m.room.create"), "the first event item is {first_type:?}, not m.room.create");

    // The messages, in order; edits and reactions are no items of their own, thread replies show in
    // the main timeline (threads are not enabled in this client).
    let bodies: Vec<String> = items.iter().filter_map(|i| i.as_event()).filter_map(body).collect();
    let mut expected: Vec<String> = (0..MESSAGES).map(|n| format!("m{n:02}")).collect();
    expected[20] = "m20 edited".to_owned();
    expected.remove(50);
    expected.extend(["reply to m30", "thread reply 1", "thread reply 2"].map(str::to_owned));
    ensure!(bodies == expected, "message bodies in the timeline: {bodies:?}");

    let m10 = find(items, &ids[10]).context("m10")?;
    let reactions = m10.content().reactions().context("m10 has no reactions")?;
    let senders = |key: &str| -> Vec<String> {
        reactions.get(key).map(|by| by.keys().map(|u| u.to_string()).collect()).unwrap_or_default()
    };
    ensure!(senders("👍").len() == 1 && senders("🎉").len() == 1, "m10 reactions: {reactions:?}");

    let m50 = find(items, &ids[50]).context("m50 (redacted)")?;
    ensure!(
        matches!(m50.content().as_msglike().map(|m| &m.kind), Some(MsgLikeKind::Redacted)),
        "m50 after its redaction: {:?}",
        m50.content()
    );

    let m20 = find(items, &ids[20]).context("m20")?;
    ensure!(m20.content().as_message().is_some_and(|m| m.is_edited()), "m20 is not marked edited");

    let reply_item = find(items, reply).context("the reply")?;
    let in_reply_to = reply_item.content().in_reply_to().context("the reply has no in_reply_to")?;
    ensure!(in_reply_to.event_id.as_str() == ids[30], "the reply is to {}", in_reply_to.event_id);
    if !matches!(in_reply_to.event, TimelineDetails::Ready(_)) {
        timeline.fetch_details_for_event(<&matrix_sdk::ruma::EventId>::try_from(reply)?).await?;
    }
    let items_now = timeline.items().await;
    let details = find(&items_now, reply).and_then(|i| i.content().in_reply_to()).context("reply")?.event;
    match details {
        TimelineDetails::Ready(embedded) => ensure!(
            embedded.content.as_message().map(|m| m.body()) == Some("m30"),
            "the replied-to event's content: {:?}",
            embedded.content
        ),
        other => bail!("the replied-to event's details: {other:?}"),
    }

    let root: OwnedEventId = ids[40].as_str().try_into()?;
    for id in thread_replies {
        let item = find(items, id).context("a thread reply")?;
        ensure!(item.content().thread_root().as_ref() == Some(&root), "thread reply {id}: thread root {:?}", item.content().thread_root());
    }
    let m40 = find(items, &ids[40]).context("m40")?;
    let summary = m40.content().thread_summary().context("m40 (thread root) has no thread summary")?;
    ensure!(summary.num_replies == 2, "m40's thread summary counts {} replies", summary.num_replies);
    Ok(())
}
