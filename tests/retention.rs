//! Retention (issue 11, MSC1763): a room's `m.room.retention` makes its old events expire.
//! Clients never see an expired event (messages, sync, event, context, search, relations,
//! notifications), even before a purge job ran; the job then deletes their content, search
//! postings, relations, notifications and timeline places in bounded batches, resumes a job a
//! stopped server left running, and the room keeps working (its state and latest event stay).
//! Old events are made by an application service's timestamp massaging (`?ts=`).

mod common;

use std::collections::BTreeSet;

use common::{TestServer, enc};
use parvis::services::{
    Services,
    jobs::JobStatus,
    retention::{JOB_KIND, lifetime::Lifetime},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const DAY: u64 = 86_400_000;

const ARCHIVE: &str = r##"
id: archive
url: null
as_token: "as-archive-token"
hs_token: "hs-archive-token"
sender_localpart: _archive_bot
namespaces:
  users:
    - exclusive: true
      regex: "@_archive_.*:test\\.local"
"##;

fn config(dir: &std::path::Path, interval: &str) -> parvis::config::Config {
    let mut c = common::config(&dir.join("db"));
    let file = dir.join("archive.yaml");
    std::fs::write(&file, ARCHIVE).unwrap();
    c.appservices.registration_files = vec![file];
    c.retention.enabled = true;
    c.retention.allowed_lifetime_min = Some(Lifetime(DAY));
    c.retention.purge_jobs = vec![parvis::services::retention::PurgeJobConfig {
        shortest_max_lifetime: None,
        longest_max_lifetime: None,
        interval: Lifetime::parse(interval).unwrap(),
    }];
    c
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Sends as the application service's bot, at `ts`; returns the event id.
async fn send_at(server: &TestServer, room: &str, txn: &str, ts: u64, content: Value) -> String {
    let (status, body) = server
        .call(
            Method::PUT,
            &format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}?ts={ts}",
                enc(room)
            ),
            Some("as-archive-token"),
            Some(content),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["event_id"].as_str().unwrap().to_owned()
}

fn text(body: &str) -> Value {
    json!({ "msgtype": "m.text", "body": body })
}

async fn message_bodies(server: &TestServer, token: &str, room: &str) -> BTreeSet<String> {
    let page = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=100",
                enc(room)
            ),
            token,
        )
        .await;
    page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect()
}

async fn search(server: &TestServer, token: &str, term: &str) -> usize {
    let body = server
        .post(
            "/_matrix/client/v3/search",
            token,
            json!({ "search_categories": { "room_events": { "search_term": term } } }),
        )
        .await;
    body["search_categories"]["room_events"]["results"]
        .as_array()
        .unwrap()
        .len()
}

/// What the database holds for the room: search postings of `word`, relations to `target`,
/// alice's notifications naming `event`, and whether `event` keeps its content.
struct Stored {
    postings: usize,
    relations: usize,
    notifications: usize,
    has_content: bool,
    in_timeline: bool,
}

fn stored(s: &Services, room: &str, word: &str, target: &str, event: &str, alice: &str) -> Stored {
    use parvis::storage::keys::Key;
    let room_id = ruma::OwnedRoomId::try_from(room).unwrap();
    let short_room = s.short.room(&room_id).unwrap().unwrap();
    let db = &s.globals.db;
    let postings = db
        .scan_prefix(
            parvis::services::search::SEARCH_POSTINGS,
            &parvis::services::search::index::token_prefix(short_room, word),
        )
        .count();
    let relations = db
        .scan_prefix(
            parvis::services::relations::RELATIONS,
            &Key::new().u64(short_room).str(target).build(),
        )
        .count();
    let event_id = ruma::OwnedEventId::try_from(event).unwrap();
    let short = s.short.event(&event_id).unwrap().unwrap();
    // A notification record names its event by short id (`1 ‖ short event ‖ ts ‖ actions`).
    let notifications = db
        .scan_prefix(
            parvis::services::push::PUSH_NOTIFICATIONS,
            &Key::new().str(alice).build(),
        )
        .filter(|e| e.as_ref().unwrap().1.get(1..9) == Some(&short.to_be_bytes()[..]))
        .count();
    let pdu: Value = serde_json::from_slice(
        &db.get(parvis::services::timeline::PDUS, &short.to_be_bytes())
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let meta = s.timeline.meta(short).unwrap().unwrap();
    let in_timeline = db
        .get(
            parvis::services::timeline::TIMELINE,
            &Key::new().u64(short_room).u64(meta.pos).build(),
        )
        .unwrap()
        .is_some();
    Stored {
        postings,
        relations,
        notifications,
        has_content: pdu["content"].get("body").is_some(),
        in_timeline,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_events_are_hidden_then_purged_and_the_room_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    // A purge interval of an hour: the first run is a minute away, after this phase.
    let server = TestServer::start_with(config(dir.path(), "1h")).await;
    let (alice, token) = server.register("alice").await;
    let room = server
        .create_room(
            &token,
            json!({ "preset": "public_chat", "name": "Project X" }),
        )
        .await;
    server
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/state/m.room.retention/",
                enc(&room)
            ),
            &token,
            json!({ "max_lifetime": 7 * DAY }),
        )
        .await;
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            Some("as-archive-token"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let old = now() - 10 * DAY;
    let old_root = send_at(&server, &room, "o1", old, text("old secret plan")).await;
    let old_reply = send_at(
        &server,
        &room,
        "o2",
        old + 1,
        json!({ "msgtype": "m.text", "body": "old secret reply",
                "m.relates_to": { "rel_type": "m.thread", "event_id": old_root } }),
    )
    .await;
    let old_edit = send_at(
        &server,
        &room,
        "o3",
        old + 2,
        json!({ "msgtype": "m.text", "body": "* old secret plan v2",
                "m.new_content": { "msgtype": "m.text", "body": "old secret plan v2" },
                "m.relates_to": { "rel_type": "m.replace", "event_id": old_root } }),
    )
    .await;
    // 150 more old messages: more than one purge batch.
    for n in 0..150 {
        send_at(
            &server,
            &room,
            &format!("bulk{n}"),
            old + 10 + n,
            text(&format!("old bulk {n}")),
        )
        .await;
    }
    let fresh = server
        .send_text(&token, &room, "f1", "fresh secret news")
        .await;
    // An old state event (the bot's display name, set at an old time): state never expires.
    let bot = "@_archive_bot:test.local";
    let (status, body) = server
        .call(
            Method::PUT,
            &format!(
                "/_matrix/client/v3/rooms/{}/state/m.room.member/{}?ts={old}",
                enc(&room),
                enc(bot)
            ),
            Some("as-archive-token"),
            Some(json!({ "membership": "join", "displayname": "Archive" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/state/m.room.topic/",
                enc(&room)
            ),
            &token,
            json!({ "topic": "kept topic" }),
        )
        .await;
    // The room's latest event is old: it is never purged (but hidden all the same).
    let old_latest = send_at(&server, &room, "o4", old + 500, text("old latest")).await;

    // Hidden at once, before any purge.
    let bodies = message_bodies(&server, &token, &room).await;
    assert!(bodies.contains("fresh secret news"), "{bodies:?}");
    assert!(
        !bodies
            .iter()
            .any(|b| b.starts_with("old") || b.starts_with("* old")),
        "{bodies:?}"
    );
    let sync = server.get("/_matrix/client/v3/sync", &token).await;
    let timeline = sync["rooms"]["join"][&room]["timeline"]["events"].to_string();
    assert!(
        timeline.contains("fresh secret news") && !timeline.contains("old "),
        "{timeline}"
    );
    for id in [&old_root, &old_reply, &old_latest] {
        let (status, _) = server
            .call(
                Method::GET,
                &format!("/_matrix/client/v3/rooms/{}/event/{}", enc(&room), enc(id)),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}");
        let (status, _) = server
            .call(
                Method::GET,
                &format!(
                    "/_matrix/client/v3/rooms/{}/context/{}",
                    enc(&room),
                    enc(id)
                ),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}");
    }
    assert_eq!(search(&server, &token, "secret").await, 1);
    let (status, relations) = server
        .call(
            Method::GET,
            &format!(
                "/_matrix/client/v1/rooms/{}/relations/{}",
                enc(&room),
                enc(&old_root)
            ),
            Some(&token),
            None,
        )
        .await;
    assert!(
        status == StatusCode::NOT_FOUND || relations["chunk"] == json!([]),
        "{status} {relations}"
    );
    let notifications = server.get("/_matrix/client/v3/notifications", &token).await;
    let listed = notifications["notifications"].to_string();
    assert!(
        !listed.contains(&old_root) && !listed.contains(&old_latest),
        "{listed}"
    );
    let topic = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/state/m.room.topic/",
                enc(&room)
            ),
            &token,
        )
        .await;
    assert_eq!(topic["topic"], "kept topic");

    // The database still holds everything: nothing was purged yet.
    let services = common::federation::services(&server);
    let before = stored(&services, &room, "secret", &old_root, &old_root, &alice);
    assert!(
        before.postings >= 3 && before.relations == 2 && before.has_content && before.in_timeline
    );
    assert_eq!(
        before.notifications, 1,
        "the one-to-one rule notified alice"
    );

    // A purge job a stopped server left running resumes at the next start.
    let interrupted = services
        .jobs
        .start(
            JOB_KIND,
            "retention",
            Some(json!({ "interval": 3_600_000 })),
        )
        .unwrap();
    drop(services);
    server.stop().await;

    let server = TestServer::start_with(config(dir.path(), "1s")).await;
    let services = common::federation::services(&server);
    let resumed = common::federation::eventually("the interrupted job completes", || {
        let services = services.clone();
        let id = interrupted.job_id.clone();
        async move {
            let job = services.jobs.get(&id).unwrap().unwrap();
            (job.status == JobStatus::Complete).then_some(job)
        }
    })
    .await;
    assert_eq!(resumed.progress.done, resumed.progress.total);
    assert!(resumed.result.unwrap()["events_purged"].as_u64().unwrap() >= 153);
    // The periodic job runs too, and finds nothing more.
    common::federation::eventually("a periodic purge completes", || {
        let services = services.clone();
        let id = interrupted.job_id.clone();
        async move {
            services
                .jobs
                .list(10)
                .unwrap()
                .into_iter()
                .any(|j| j.kind == JOB_KIND && j.job_id != id && j.status == JobStatus::Complete)
                .then_some(())
        }
    })
    .await;

    for id in [&old_root, &old_reply, &old_edit] {
        let after = stored(&services, &room, "secret", &old_root, id, &alice);
        assert!(
            !after.has_content && !after.in_timeline,
            "{id} was not purged"
        );
    }
    let after = stored(&services, &room, "secret", &old_root, &old_root, &alice);
    assert_eq!(after.relations, 0);
    assert_eq!(after.notifications, 0);
    // Only the fresh message's posting of "secret" is left.
    assert_eq!(after.postings, 1);
    // The latest event stays (the room's graph goes on from it), hidden.
    let latest = stored(&services, &room, "old", &old_root, &old_latest, &alice);
    assert!(latest.has_content && latest.in_timeline);
    let fresh_stored = stored(&services, &room, "fresh", &old_root, &fresh, &alice);
    assert!(fresh_stored.has_content && fresh_stored.in_timeline);

    // The room keeps working.
    server
        .send_text(&token, &room, "f2", "after the purge")
        .await;
    let bodies = message_bodies(&server, &token, &room).await;
    assert!(
        bodies.contains("fresh secret news") && bodies.contains("after the purge"),
        "{bodies:?}"
    );
    assert!(!bodies.iter().any(|b| b.starts_with("old")), "{bodies:?}");
    let topic = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/state/m.room.topic/",
                enc(&room)
            ),
            &token,
        )
        .await;
    assert_eq!(topic["topic"], "kept topic");
    let name = server
        .get(
            &format!("/_matrix/client/v3/rooms/{}/state/m.room.name/", enc(&room)),
            &token,
        )
        .await;
    assert_eq!(name["name"], "Project X");
    let member = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/state/m.room.member/{}",
                enc(&room),
                enc(bot)
            ),
            &token,
        )
        .await;
    assert_eq!(member["displayname"], "Archive");
    assert_eq!(search(&server, &token, "secret").await, 1);
    drop(services);
    server.stop().await;
}

#[tokio::test]
async fn retention_settings_are_checked() {
    let err = parvis::config::Config::load(
        None,
        vec![
            (
                "PARVIS_RETENTION__ALLOWED_LIFETIME_MIN".to_owned(),
                "4w".to_owned(),
            ),
            (
                "PARVIS_RETENTION__ALLOWED_LIFETIME_MAX".to_owned(),
                "1d".to_owned(),
            ),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("retention.allowed_lifetime_min"), "{err}");
    let err = parvis::config::Config::load(
        None,
        vec![(
            "PARVIS_RETENTION__DEFAULT_POLICY__MAX_LIFETIME".to_owned(),
            "soon".to_owned(),
        )],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("retention.default_policy.max_lifetime"),
        "{err}"
    );
    let config = parvis::config::Config::load(
        None,
        vec![(
            "PARVIS_RETENTION__DEFAULT_POLICY__MAX_LIFETIME".to_owned(),
            "30d".to_owned(),
        )],
    )
    .unwrap();
    assert_eq!(
        config.retention.default_policy.max_lifetime,
        Some(Lifetime(30 * DAY))
    );
}

/// `[retention] redaction_retention_period` and MSC2815: a redacted event's original is kept for
/// the period; room moderators read it with `include_unredacted_content`, others get 403; after
/// the period it is gone (404 `M_UNREDACTED_CONTENT_DELETED`) and the sweep erases it.
#[tokio::test]
async fn moderators_read_redacted_originals_for_the_retention_period() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(&dir.path().join("db"));
    config.retention.redaction_retention_period = Lifetime(2_000);
    let server = TestServer::start_with(config).await;
    let (_, alice) = server.register("alice").await;
    let (_, bob) = server.register("bob").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &bob,
            json!({}),
        )
        .await;
    let secret = server
        .send_text(&bob, &room, "s1", "my password is hunter2")
        .await;
    server
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/redact/{}/r1",
                enc(&room),
                enc(&secret)
            ),
            &bob,
            json!({ "reason": "oops" }),
        )
        .await;
    let path = |unredacted: bool| {
        format!(
            "/_matrix/client/v3/rooms/{}/event/{}{}",
            enc(&room),
            enc(&secret),
            if unredacted {
                "?fi.mau.msc2815.include_unredacted_content=true"
            } else {
                ""
            }
        )
    };
    let plain = server.get(&path(false), &alice).await;
    assert_eq!(plain["content"], json!({}));
    let (status, _) = server
        .call(Method::GET, &path(true), Some(&bob), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let original = server.get(&path(true), &alice).await;
    assert_eq!(original["content"]["body"], "my password is hunter2");
    assert_eq!(
        original["unsigned"]["redacted_because"]["content"]["reason"],
        "oops"
    );

    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    let (status, body) = server
        .call(Method::GET, &path(true), Some(&alice), None)
        .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::NOT_FOUND, Some("M_UNREDACTED_CONTENT_DELETED"))
    );
    let services = common::federation::services(&server);
    assert_eq!(
        parvis::services::timeline::redacted_originals::sweep(&services).unwrap(),
        1
    );
    drop(services);
    server.stop().await;
}
