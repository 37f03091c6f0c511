//! Exports (issue 11): a room with threads, edits, reactions, a reply, a redaction and an image,
//! exported by the admin API (a background job, then a download) and by `parvis export-room`
//! through the running server's control socket; the archive's JSON Lines hold every event in
//! order, the state, the members over time and the media; its HTML transcript opens in headless
//! Chromium (a screenshot is taken) and shows the messages as a reader expects. `export-user`
//! gives a user's data.

mod common;

use std::{collections::BTreeMap, io::Read, path::Path, process::Command};

use common::{TestServer, enc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The entries of a tar archive: name → bytes.
fn entries(tar_bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut out = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        out.insert(name, bytes);
    }
    out
}

fn lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A 2×2 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0x08, 0x02, 0x00, 0x00, 0x00, 0xfd, 0xd4, 0x9a,
    0x73, 0x00, 0x00, 0x00, 0x16, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x08, 0x19, 0x18, 0xfe, 0x03, 0x01, 0x00, 0x2f, 0xf1, 0x05, 0xfc, 0x19, 0x2a, 0xa0, 0x0f,
    0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

async fn send(
    server: &TestServer,
    token: &str,
    room: &str,
    kind: &str,
    txn: &str,
    content: Value,
) -> String {
    let body = server
        .put(
            &format!("/_matrix/client/v3/rooms/{}/send/{kind}/{txn}", enc(room)),
            token,
            content,
        )
        .await;
    body["event_id"].as_str().unwrap().to_owned()
}

/// Opens the transcript in headless Chromium: a screenshot, and the page's text (the DOM).
fn open_in_chromium(html: &Path, dir: &Path) -> String {
    let url = format!("file://{}", html.display());
    let base = |extra: &[&str]| {
        let mut command = Command::new("chromium");
        command.args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
            &format!("--user-data-dir={}", dir.join("chromium-profile").display()),
        ]);
        command.args(extra).arg(&url);
        command
            .output()
            .expect("chromium runs (scripts/ensure-system.sh --tests installs it)")
    };
    let shot = dir.join("transcript.png");
    let out = base(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1000,2400",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(&[0x89, b'P', b'N', b'G']) && png.len() > 5_000,
        "{} bytes",
        png.len()
    );
    let dom = base(&["--dump-dom"]);
    assert!(dom.status.success());
    let log = String::from_utf8_lossy(&dom.stderr);
    // The page has no script; nothing may complain in its console.
    assert!(
        !log.lines()
            .any(|l| l.contains("CONSOLE") || l.contains("Uncaught")),
        "{log}"
    );
    String::from_utf8_lossy(&dom.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_with_threads_edits_and_media_exports_and_its_transcript_opens() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = TestServer::start(&data).await;
    server.register("root").await;
    server.stop().await;
    parvis::services::admin::make_admin::make_admin(common::config(&data), "@root:test.local")
        .unwrap();
    let server = TestServer::start(&data).await;
    let (_, root) = {
        let (status, body) = server
            .call(
                Method::POST,
                "/_matrix/client/v3/login",
                None,
                Some(json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "root" }, "password": "secret-password" })),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        ((), body["access_token"].as_str().unwrap().to_owned())
    };
    let (alice_id, alice) = server.register("alice").await;
    let (bob_id, bob) = server.register("bob").await;
    server
        .put(
            "/_matrix/client/v3/profile/@alice:test.local/displayname",
            &alice,
            json!({ "displayname": "Alice Auditor" }),
        )
        .await;
    let room = server
        .create_room(
            &alice,
            json!({ "preset": "public_chat", "name": "Project Phoenix", "topic": "Launch plans" }),
        )
        .await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &bob,
            json!({}),
        )
        .await;
    let text = |body: &str| json!({ "msgtype": "m.text", "body": body });
    let root_msg = send(
        &server,
        &alice,
        &room,
        "m.room.message",
        "1",
        text("Kick-off: ship by Friday"),
    )
    .await;
    send(
        &server,
        &bob,
        &room,
        "m.room.message",
        "2",
        json!({ "msgtype": "m.text", "body": "Thread reply one",
        "m.relates_to": { "rel_type": "m.thread", "event_id": root_msg } }),
    )
    .await;
    send(
        &server,
        &alice,
        &room,
        "m.room.message",
        "3",
        json!({ "msgtype": "m.text", "body": "Thread reply two",
        "m.relates_to": { "rel_type": "m.thread", "event_id": root_msg } }),
    )
    .await;
    let typo = send(
        &server,
        &bob,
        &room,
        "m.room.message",
        "4",
        text("Budget is 10k"),
    )
    .await;
    send(
        &server,
        &bob,
        &room,
        "m.room.message",
        "5",
        json!({ "msgtype": "m.text", "body": "* Budget is 12k",
        "m.new_content": { "msgtype": "m.text", "body": "Budget is 12k" },
        "m.relates_to": { "rel_type": "m.replace", "event_id": typo } }),
    )
    .await;
    send(
        &server,
        &alice,
        &room,
        "m.reaction",
        "6",
        json!({
        "m.relates_to": { "rel_type": "m.annotation", "event_id": root_msg, "key": "🚀" } }),
    )
    .await;
    send(
        &server,
        &alice,
        &room,
        "m.room.message",
        "7",
        json!({ "msgtype": "m.text", "body": "Agreed on the budget",
        "m.relates_to": { "m.in_reply_to": { "event_id": typo } } }),
    )
    .await;
    let secret = send(
        &server,
        &bob,
        &room,
        "m.room.message",
        "8",
        text("Wrong room, sorry"),
    )
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
    let upload: Value = server
        .http
        .post(format!(
            "{}/_matrix/media/v3/upload?filename=chart.png",
            server.base
        ))
        .bearer_auth(&alice)
        .header("content-type", "image/png")
        .body(PNG)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mxc = upload["content_uri"].as_str().unwrap().to_owned();
    send(
        &server,
        &alice,
        &room,
        "m.room.message",
        "9",
        json!({ "msgtype": "m.image", "body": "chart.png", "url": mxc,
        "info": { "mimetype": "image/png", "size": PNG.len() } }),
    )
    .await;

    // Not for ordinary users; unknown rooms are 404.
    let (status, _) = server
        .call(
            Method::POST,
            &format!("/_parvis/admin/v1/rooms/{}/export", enc(&room)),
            Some(&bob),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server
        .call(
            Method::POST,
            "/_parvis/admin/v1/rooms/!nowhere:test.local/export",
            Some(&root),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The admin route: a job, then the download.
    let started = server
        .post(
            &format!("/_parvis/admin/v1/rooms/{}/export", enc(&room)),
            &root,
            json!({}),
        )
        .await;
    let job_id = started["job_id"].as_str().unwrap().to_owned();
    let job = common::federation::eventually("the export ends", || {
        let (server, root, job_id) = (&server, &root, &job_id);
        async move {
            let job = server
                .get(&format!("/_parvis/admin/v1/jobs/{job_id}"), root)
                .await;
            (job["status"] != "running").then_some(job)
        }
    })
    .await;
    assert_eq!(job["status"], "complete", "{job}");
    assert_eq!(job["kind"], "export_room");
    assert_eq!(job["progress"]["done"], job["progress"]["total"], "{job}");
    let res = server
        .http
        .get(format!("{}/_parvis/admin/v1/exports/{job_id}", server.base))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/x-tar");
    let archive = entries(&res.bytes().await.unwrap());
    for name in [
        "room.json",
        "events.jsonl",
        "state.json",
        "members.jsonl",
        "media.json",
        "transcript.html",
    ] {
        assert!(
            archive.contains_key(name),
            "{name} missing: {:?}",
            archive.keys()
        );
    }

    // Every event, in order, as stored: the edit, the reaction, the redaction and its redacted target.
    let events = lines(&archive["events.jsonl"]);
    let about: Value = serde_json::from_slice(&archive["room.json"]).unwrap();
    assert_eq!(about["events"], json!(events.len()));
    assert_eq!(events[0]["type"], "m.room.create");
    let bodies: Vec<&str> = events
        .iter()
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert_eq!(
        bodies,
        [
            "Kick-off: ship by Friday",
            "Thread reply one",
            "Thread reply two",
            "Budget is 10k",
            "* Budget is 12k",
            "Agreed on the budget",
            "chart.png"
        ]
    );
    let redacted = events
        .iter()
        .find(|e| e["event_id"] == json!(secret))
        .unwrap();
    assert_eq!(redacted["content"], json!({}));
    assert!(
        redacted["unsigned"]["redacted_because"].is_object(),
        "{redacted}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "m.reaction" && e["content"]["m.relates_to"]["key"] == "🚀")
    );
    assert!(events.iter().any(|e| e["type"] == "m.room.redaction"));
    let state: Vec<Value> = serde_json::from_slice(&archive["state.json"]).unwrap();
    assert!(
        state
            .iter()
            .any(|e| e["type"] == "m.room.topic" && e["content"]["topic"] == "Launch plans")
    );
    let members = lines(&archive["members.jsonl"]);
    let joined: Vec<&str> = members
        .iter()
        .filter(|m| m["membership"] == "join")
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(joined, [alice_id.as_str(), bob_id.as_str()]);
    let media: Vec<Value> = serde_json::from_slice(&archive["media.json"]).unwrap();
    assert_eq!(media.len(), 1);
    assert_eq!(media[0]["mxc"], json!(mxc));
    let file = media[0]["file"].as_str().unwrap();
    assert_eq!(archive[file], PNG);

    // The transcript opens in Chromium and reads as the room did.
    let html_path = dir.path().join("transcript.html");
    std::fs::write(&html_path, &archive["transcript.html"]).unwrap();
    let dom = open_in_chromium(&html_path, dir.path());
    for expected in [
        "Project Phoenix",
        "Launch plans",
        "Alice Auditor",
        "Kick-off: ship by Friday",
        "Thread: 2 replies",
        "Thread reply one",
        "Thread reply two",
        "Budget is 12k",
        "(edited)",
        "🚀 1",
        "In reply to bob",
        "Message deleted",
        "data:image/png;base64,",
    ] {
        assert!(dom.contains(expected), "the page lacks {expected:?}");
    }
    assert!(!dom.contains("Wrong room, sorry") && !dom.contains("Budget is 10k"));

    // The command line, through the running server's control socket.
    let out = dir.path().join("cli-export.tar");
    let cli = Command::new(env!("CARGO_BIN_EXE_parvis"))
        .args(["export-room", &room, "--out"])
        .arg(&out)
        .env("PARVIS_STORAGE__PATH", &data)
        .env("PARVIS_SERVER_NAME", "test.local")
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let result: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(result["events"], json!(events.len()), "{result}");
    let from_cli = entries(&std::fs::read(&out).unwrap());
    assert_eq!(lines(&from_cli["events.jsonl"]).len(), events.len());
    // Progress lines on a non-terminal.
    let progress = String::from_utf8_lossy(&cli.stderr);
    assert!(progress.contains("events: "), "{progress}");

    // A user's data.
    let started = server
        .post(
            &format!("/_parvis/admin/v1/users/{}/export", enc(&alice_id)),
            &root,
            json!({}),
        )
        .await;
    let job_id = started["job_id"].as_str().unwrap().to_owned();
    common::federation::eventually("the user export ends", || {
        let (server, root, job_id) = (&server, &root, &job_id);
        async move {
            let job = server
                .get(&format!("/_parvis/admin/v1/jobs/{job_id}"), root)
                .await;
            (job["status"] == "complete").then_some(())
        }
    })
    .await;
    let bytes = server
        .http
        .get(format!("{}/_parvis/admin/v1/exports/{job_id}", server.base))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let user = entries(&bytes);
    let about: Value = serde_json::from_slice(&user["user.json"]).unwrap();
    assert_eq!(about["displayname"], "Alice Auditor");
    let devices: Vec<Value> = serde_json::from_slice(&user["devices.json"]).unwrap();
    assert!(!devices.is_empty() && devices.iter().all(|d| d.get("access_token").is_none()));
    let room_events = lines(&user[&format!("rooms/{room}/events.jsonl")]);
    assert!(
        room_events
            .iter()
            .any(|e| e["content"]["body"] == "Kick-off: ship by Friday")
    );
    let uploads: Vec<Value> = serde_json::from_slice(&user["media.json"]).unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!(user[uploads[0]["file"].as_str().unwrap()], PNG);
    let (status, _) = server
        .call(
            Method::GET,
            "/_parvis/admin/v1/exports/nosuchjob",
            Some(&root),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}
