//! Several `parvis` processes serving one homeserver from one PostgreSQL schema
//! (`[storage.postgres] shared`, issue 13 step 2). Runs when `PARVIS_TEST_PG` names a PostgreSQL
//! (`scripts/with-postgres.sh`, as `scripts/test.sh` does).
//!
//! Two processes started at once make one signing key; any process accepts any request: a token
//! issued by one works on the other, a send on one wakes a long-poll on the other, /sync tokens
//! travel between them without skipping or repeating an event; a logout on one is refused by
//! the other at once; a redaction and a push rule change on one are served by the other as soon
//! as its /sync shows them; an account locked through one is refused by the other; state events
//! sent at once through both are all kept, and so are state events of a remote server received by
//! one process while the other appends local ones. Checks made at once through both (a token's
//! last use, a webhook name, a user's pending uploads) hold once; a download waiting on one gets
//! an upload made through the other; a retention policy set through one is applied by the other.
//! A process
//! killed with SIGKILL while two writers send through both loses nothing acknowledged, stores
//! nothing twice, and its background work moves to the survivor when its lease ends.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, enc, federation::eventually, process::Proc};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// `n` processes of one group on a fresh schema and one media folder; the first one's federation
/// address names the server.
fn group(dir: &std::path::Path, url: &str, n: usize) -> Vec<Proc> {
    let schema = format!("cluster_{}_{}", std::process::id(), rand_suffix());
    let mut procs: Vec<Proc> = (0..n)
        .map(|i| {
            let dir = dir.join(format!("p{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            Proc::new(&dir)
        })
        .collect();
    let name = procs[0].name();
    for proc in &mut procs {
        proc.env.extend([
            ("PARVIS_SERVER_NAME".to_owned(), name.clone()),
            ("PARVIS_STORAGE__ENGINE".to_owned(), "postgres".to_owned()),
            ("PARVIS_STORAGE__POSTGRES__URL".to_owned(), url.to_owned()),
            (
                "PARVIS_STORAGE__POSTGRES__SCHEMA".to_owned(),
                schema.clone(),
            ),
            (
                "PARVIS_STORAGE__POSTGRES__SHARED".to_owned(),
                "true".to_owned(),
            ),
            (
                "PARVIS_STORAGE__POSTGRES__POOL_SIZE".to_owned(),
                "2".to_owned(),
            ),
            // One media folder for the group (as one shared volume would be).
            (
                "PARVIS_STORAGE__MEDIA_PATH".to_owned(),
                dir.join("media").to_string_lossy().into_owned(),
            ),
        ]);
    }
    procs
}

/// A group of two processes, started together.
async fn start_pair(dir: &std::path::Path, url: &str) -> Vec<Proc> {
    let mut procs = group(dir, url, 2);
    start_together(&mut procs).await;
    procs
}

/// Starts the first two processes at once.
async fn start_together(procs: &mut [Proc]) {
    let (first, second) = procs.split_at_mut(1);
    tokio::join!(first[0].start(), second[0].start());
}

/// Makes the registered user `@root` an admin (`parvis make-admin`) and logs it in through
/// `proc`; its access token.
async fn root_admin(proc: &Proc) -> String {
    let made = proc
        .command()
        .args(["make-admin", &format!("@root:{}", proc.name())])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (_, root) = proc
        .server()
        .login(common::password_login("root", "secret-password"))
        .await;
    root["access_token"].as_str().unwrap().to_owned()
}

/// The same request sent at once through every process; the answers in the processes' order.
async fn at_once(
    procs: &[Proc],
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Value,
) -> Vec<(StatusCode, Value)> {
    let asks: Vec<_> = procs
        .iter()
        .map(|proc| {
            let (server, method, path) = (proc.server(), method.clone(), path.to_owned());
            let (token, body) = (token.to_owned(), body.clone());
            tokio::spawn(async move { server.call(method, &path, Some(&token), Some(body)).await })
        })
        .collect();
    let mut answers = Vec::new();
    for ask in asks {
        answers.push(ask.await.unwrap());
    }
    answers
}

/// Sends state event `org.example.part/<key>` in a task; the task answers the response body.
fn put_part(
    server: TestServer,
    token: &str,
    room: &str,
    key: String,
    n: usize,
) -> tokio::task::JoinHandle<Value> {
    let (token, room) = (token.to_owned(), room.to_owned());
    tokio::spawn(async move {
        server
            .put(
                &format!(
                    "/_matrix/client/v3/rooms/{}/state/org.example.part/{key}",
                    enc(&room)
                ),
                &token,
                json!({ "n": n }),
            )
            .await
    })
}

/// How many `org.example.part` events the room's current state holds, as `server` serves it.
async fn parts(server: &TestServer, room: &str, token: &str) -> usize {
    let state = server
        .get(
            &format!("/_matrix/client/v3/rooms/{}/state", enc(room)),
            token,
        )
        .await;
    state.as_array().map_or(0, |events| {
        events
            .iter()
            .filter(|e| e["type"] == "org.example.part")
            .count()
    })
}

fn rand_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{nanos:x}")
}

/// The verify keys a process serves on its federation listener (TLS, self-signed).
fn served_keys(fed_port: u16) -> Value {
    let script = format!(
        "import ssl, urllib.request, sys; \
         c = ssl.create_default_context(); c.check_hostname = False; c.verify_mode = ssl.CERT_NONE; \
         sys.stdout.write(urllib.request.urlopen('https://127.0.0.1:{fed_port}/_matrix/key/v2/server', context=c).read().decode())"
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let document: Value = serde_json::from_slice(&out.stdout).unwrap();
    document["verify_keys"].clone()
}

async fn sync(server: &TestServer, token: &str, since: Option<&str>, timeout_ms: u64) -> Value {
    let mut path = format!("/_matrix/client/v3/sync?timeout={timeout_ms}");
    if let Some(since) = since {
        path.push_str(&format!("&since={}", enc(since)));
    }
    server.get(&path, token).await
}

fn bodies(sync: &Value, room: &str) -> Vec<String> {
    sync["rooms"]["join"][room]["timeline"]["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_serve_one_homeserver() {
    let Ok(url) = std::env::var("PARVIS_TEST_PG") else {
        eprintln!("PARVIS_TEST_PG is not set: the cluster test needs a PostgreSQL");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut procs = start_pair(dir.path(), &url).await;
    let (a, b) = (procs[0].server(), procs[1].server());

    // Started together on an empty schema: one signing key, served by both.
    let keys = served_keys(procs[0].fed_port);
    assert_eq!(keys.as_object().unwrap().len(), 1, "{keys}");
    assert_eq!(served_keys(procs[1].fed_port), keys);

    // A token issued by A works on B; a room made on A is joined on B.
    let (alice, alice_token) = a.register("alice").await;
    assert_eq!(b.whoami(&alice_token).await.1["user_id"], alice);
    let room = a
        .create_room(&alice_token, json!({ "preset": "public_chat" }))
        .await;
    let (bob, bob_token) = b.register("bob").await;
    let joined = b
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &bob_token,
            json!({}),
        )
        .await;
    assert_eq!(joined["room_id"], room.as_str());

    // A send on A wakes a long-poll on B.
    let since = sync(&b, &bob_token, None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let waiting = {
        let (b, token, since) = (procs[1].server(), bob_token.clone(), since.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let answer = sync(&b, &token, Some(&since), 20_000).await;
            (answer, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.send_text(&alice_token, &room, "wake", "wake up").await;
    let (answer, waited) = waiting.await.unwrap();
    assert_eq!(bodies(&answer, &room), ["wake up"], "{answer}");
    assert!(waited < Duration::from_secs(10), "woken after {waited:?}");

    // Sends on either process, /sync tokens carried from one to the other: every message once,
    // in order.
    let servers = [&a, &b];
    let mut since = answer["next_batch"].as_str().unwrap().to_owned();
    let (mut sent, mut seen) = (Vec::new(), Vec::new());
    for n in 0..30 {
        let body = format!("message {n}");
        servers[n % 2]
            .send_text(&alice_token, &room, &format!("m{n}"), &body)
            .await;
        sent.push(body);
        let answer = sync(servers[(n / 3) % 2], &bob_token, Some(&since), 0).await;
        seen.extend(bodies(&answer, &room));
        since = answer["next_batch"].as_str().unwrap().to_owned();
    }
    for turn in 0..20 {
        if seen.len() >= sent.len() {
            break;
        }
        let answer = sync(servers[turn % 2], &bob_token, Some(&since), 1_000).await;
        seen.extend(bodies(&answer, &room));
        since = answer["next_batch"].as_str().unwrap().to_owned();
    }
    assert_eq!(seen, sent, "every message once, in order");

    // A logout on A: B refuses the token at once.
    let (status, login) = b
        .login(common::password_login("bob", "secret-password"))
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let second = login["access_token"].as_str().unwrap().to_owned();
    assert_eq!(b.whoami(&second).await.0, StatusCode::OK);
    a.post("/_matrix/client/v3/logout", &second, json!({}))
        .await;
    let (status, body) = b.whoami(&second).await;
    common::assert_error(status, &body, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");

    // A redaction on A: once B's /sync shows it, B serves the event redacted (B had it parsed).
    let secret = a.send_text(&alice_token, &room, "secret", "a secret").await;
    let event_path = format!(
        "/_matrix/client/v3/rooms/{}/event/{}",
        enc(&room),
        enc(&secret)
    );
    assert_eq!(
        b.get(&event_path, &bob_token).await["content"]["body"],
        "a secret"
    );
    let before = sync(&b, &bob_token, None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let redaction = a
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/redact/{}/r1",
                enc(&room),
                enc(&secret)
            ),
            &alice_token,
            json!({}),
        )
        .await["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut since = before;
    let mut shown = false;
    for _ in 0..30 {
        let answer = sync(&b, &bob_token, Some(&since), 500).await;
        since = answer["next_batch"].as_str().unwrap().to_owned();
        let events = answer["rooms"]["join"][&room]["timeline"]["events"].as_array();
        if events.is_some_and(|events| events.iter().any(|e| e["event_id"] == redaction.as_str())) {
            shown = true;
            break;
        }
    }
    assert!(shown, "B's /sync shows the redaction");
    let served = b.get(&event_path, &bob_token).await;
    assert_eq!(served["content"], json!({}), "{served}");

    // A push rule added on A, after B read (and cached) bob's rules: B serves it, soon.
    let rule_path = "/_matrix/client/v3/pushrules/global/override/quiet";
    let (status, _) = b
        .call(reqwest::Method::GET, rule_path, Some(&bob_token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    a.put(
        rule_path,
        &bob_token,
        json!({ "actions": [], "conditions": [{ "kind": "event_match", "key": "content.body", "pattern": "shh" }] }),
    )
    .await;
    let rule = eventually("B serves the new push rule", || async {
        let (status, rule) = b
            .call(reqwest::Method::GET, rule_path, Some(&bob_token), None)
            .await;
        (status == StatusCode::OK).then_some(rule)
    })
    .await;
    assert_eq!(rule["rule_id"], "quiet");

    // An admin locks bob through A: B refuses bob's requests as soon as it has caught up (its
    // in-memory list of locked accounts changed by the lock's invalidation).
    a.register("root").await;
    let root = root_admin(&procs[0]).await;
    assert_eq!(b.whoami(&bob_token).await.0, StatusCode::OK);
    let lock = format!("/_matrix/client/v1/admin/lock/{}", enc(&bob));
    assert_eq!(
        a.put(&lock, &root, json!({ "locked": true })).await,
        json!({ "locked": true })
    );
    eventually("B refuses the locked account", || async {
        let (status, body) = b.whoami(&bob_token).await;
        (status == StatusCode::UNAUTHORIZED && body["errcode"] == "M_USER_LOCKED").then_some(())
    })
    .await;
    a.put(&lock, &root, json!({ "locked": false })).await;
    eventually("B serves the unlocked account", || async {
        (b.whoami(&bob_token).await.0 == StatusCode::OK).then_some(())
    })
    .await;

    // State events sent at once in one room through both processes: none is lost, and the
    // room keeps one forward extremity (each event built on the one before).
    let sends: Vec<_> = (0..16)
        .map(|n| put_part(procs[n % 2].server(), &alice_token, &room, n.to_string(), n))
        .collect();
    for send in sends {
        assert!(send.await.unwrap()["event_id"].is_string());
    }
    for server in [&a, &b] {
        assert_eq!(
            parts(server, &room, &alice_token).await,
            16,
            "every state event is in the current state"
        );
    }
    let last = a
        .send_text(&alice_token, &room, "after-parts", "after the parts")
        .await;
    let event = b
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/event/{}",
                enc(&room),
                enc(&last)
            ),
            &alice_token,
        )
        .await;
    assert_eq!(event["content"]["body"], "after the parts");

    for proc in &mut procs {
        proc.stop();
    }
}

/// Whether a process's log says it runs the background work.
fn runs_background(proc: &Proc) -> bool {
    std::fs::read_dir(&proc.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("log-"))
        .any(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .contains("this process runs the background work")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_process_under_load_loses_nothing_and_its_background_work_moves() {
    let Ok(url) = std::env::var("PARVIS_TEST_PG") else {
        eprintln!("PARVIS_TEST_PG is not set: the cluster test needs a PostgreSQL");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut procs = group(dir.path(), &url, 2);
    procs[0].start().await;
    procs[1].start().await;
    let (_, token) = procs[0].server().register("writer").await;
    let room = procs[0]
        .server()
        .create_room(&token, json!({ "preset": "public_chat" }))
        .await;
    // The first process took the lease; the second waits for it.
    eventually("a process runs the background work", || async {
        runs_background(&procs[0]).then_some(())
    })
    .await;
    assert!(!runs_background(&procs[1]));

    // Two writers, each through its own process, until told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..2 {
        let (server, token, room, stop) =
            (procs[w].server(), token.clone(), room.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = format!("w{w} {n}");
                let sent = server
                    .http
                    .put(format!(
                        "{}/_matrix/client/v3/rooms/{}/send/m.room.message/w{w}-{n}",
                        server.base,
                        enc(&room)
                    ))
                    .bearer_auth(&token)
                    .json(&json!({ "msgtype": "m.text", "body": body }))
                    .send()
                    .await;
                let status = match sent {
                    Ok(response) => response.status(),
                    // The killed process: no answer.
                    Err(_) => StatusCode::SERVICE_UNAVAILABLE,
                };
                if status == StatusCode::OK {
                    acked.push(body);
                }
                n += 1;
                if status != StatusCode::OK {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    // SIGKILL of the process that runs the background work, in the middle of its writes.
    procs[0].kill();
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    for writer in writers {
        acked.extend(writer.await.unwrap());
    }
    assert!(acked.len() > 10, "{} sends acknowledged", acked.len());

    // The survivor serves every acknowledged message, once.
    let survivor = procs[1].server();
    let page = survivor
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=1000",
                enc(&room)
            ),
            &token,
        )
        .await;
    let stored: Vec<String> = page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect();
    let unique: std::collections::BTreeSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "no message stored twice");
    for body in &acked {
        assert!(unique.contains(body), "{body} was acknowledged but is lost");
    }
    // A send after the kill works, and the lease moves to the survivor once the dead one's ends.
    survivor
        .send_text(&token, &room, "after", "after the kill")
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !runs_background(&procs[1]) {
        assert!(
            Instant::now() < deadline,
            "the survivor never took the lease"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    procs[1].stop();
}

/// State events of a remote server (received by one process over federation) and of a local user
/// (sent through the other process) at once in one room: none is lost from the current state.
/// Then typing and messages sent through either process reach the remote server (the servers of a
/// room are not cached in a group: the remote joined through the other process).
/// The remote events are placed against the room's head read before their commit; without the
/// check under the database's lock, a local event committed meanwhile by the other process
/// dropped out of the current state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_and_local_state_events_at_once_are_all_kept() {
    let Ok(url) = std::env::var("PARVIS_TEST_PG") else {
        eprintln!("PARVIS_TEST_PG is not set: the cluster test needs a PostgreSQL");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut procs = start_pair(dir.path(), &url).await;
    let (a, b) = (procs[0].server(), procs[1].server());
    let group_name = procs[0].name();
    let remote_dir = tempfile::tempdir().unwrap();
    let (remote, _) = common::federation::start(remote_dir.path()).await;

    // Anyone in the room may send state; the remote user joins over federation (to process A).
    let (_, alice_token) = b.register("alice").await;
    let room = b
        .create_room(
            &alice_token,
            json!({ "preset": "public_chat", "power_level_content_override": { "state_default": 0 } }),
        )
        .await;
    let (_, zoe_token) = remote.register("zoe").await;
    let joined = remote
        .post(
            &format!(
                "/_matrix/client/v3/join/{}?server_name={}",
                enc(&room),
                enc(&group_name)
            ),
            &zoe_token,
            json!({}),
        )
        .await;
    assert_eq!(joined["room_id"], room.as_str(), "{joined}");

    const EACH: usize = 12;
    let mut sends = Vec::new();
    for n in 0..EACH {
        sends.push(put_part(
            b.handle(),
            &alice_token,
            &room,
            format!("local{n}"),
            n,
        ));
        sends.push(put_part(
            remote.handle(),
            &zoe_token,
            &room,
            format!("remote{n}"),
            n,
        ));
    }
    for send in sends {
        assert!(send.await.unwrap()["event_id"].is_string());
    }
    // Every part reaches the group's current state, on both processes.
    for server in [&a, &b] {
        eventually(
            "every local and remote part in the current state",
            || async { (parts(server, &room, &alice_token).await == 2 * EACH).then_some(()) },
        )
        .await;
    }

    // Typing through either process (one of them holds the background lease, where the
    // federation sender runs) reaches the remote server.
    let remote_typing = |since: Option<String>| {
        let (remote, token, room) = (remote.handle(), zoe_token.clone(), room.clone());
        async move {
            let mut path = "/_matrix/client/v3/sync?timeout=0".to_owned();
            if let Some(since) = &since {
                path += &format!("&since={}", enc(since));
            }
            let body = remote.get(&path, &token).await;
            let next = body["next_batch"].as_str().unwrap_or_default().to_owned();
            let typing = body["rooms"]["join"][&room]["ephemeral"]["events"]
                .as_array()
                .and_then(|events| events.iter().find(|e| e["type"] == "m.typing"))
                .map(|e| e["content"]["user_ids"].clone());
            (next, typing)
        }
    };
    let alice = b.whoami(&alice_token).await.1["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut since, _) = remote_typing(None).await;
    for server in [&a, &b] {
        for typing in [true, false] {
            server
                .put(
                    &format!(
                        "/_matrix/client/v3/rooms/{}/typing/{}",
                        enc(&room),
                        enc(&alice)
                    ),
                    &alice_token,
                    json!({ "typing": typing, "timeout": 30000 }),
                )
                .await;
            let want = if typing { json!([alice]) } else { json!([]) };
            since = eventually("alice's typing reaches the remote server", || {
                let (check, since, want) = (remote_typing.clone(), since.clone(), want.clone());
                async move {
                    let (next, seen) = check(Some(since)).await;
                    (seen == Some(want)).then_some(next)
                }
            })
            .await;
        }
    }
    // So do messages sent through either process.
    for (n, server) in [&a, &b].into_iter().enumerate() {
        let text = format!("hello through process {n}");
        server
            .send_text(&alice_token, &room, &format!("hello-{n}"), &text)
            .await;
        eventually("alice's message reaches the remote server", || {
            let (remote, token, room, text) = (
                remote.handle(),
                zoe_token.clone(),
                room.clone(),
                text.clone(),
            );
            async move {
                let path = format!(
                    "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=20",
                    enc(&room)
                );
                let page = remote.get(&path, &token).await;
                page["chunk"]
                    .as_array()?
                    .iter()
                    .any(|e| e["content"]["body"] == text.as_str())
                    .then_some(())
            }
        })
        .await;
    }

    remote.stop().await;
    for proc in &mut procs {
        proc.stop();
    }
}

/// `POST /register` through the token flow (`[registration] requires_token`): the status and
/// the answer of the second call.
async fn register_with_token(server: &TestServer, user: &str, token: &str) -> (StatusCode, Value) {
    let path = "/_matrix/client/v3/register";
    let body = json!({ "username": user, "password": "secret-password" });
    let (status, first) = server
        .call(reqwest::Method::POST, path, None, Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{first}");
    let mut body = body;
    body["auth"] = json!({ "type": "m.login.registration_token", "token": token,
                           "session": first["session"] });
    server
        .call(reqwest::Method::POST, path, None, Some(body))
        .await
}

/// The access token of a new account registered with the static token.
async fn account(server: &TestServer, user: &str) -> String {
    let (status, done) = register_with_token(server, user, "static-one").await;
    assert_eq!(status, StatusCode::OK, "{done}");
    done["access_token"].as_str().unwrap().to_owned()
}

/// Checks that must hold once for the whole homeserver, made at once through both processes:
/// a registration token's last use, a webhook name in a room, a user's pending uploads; and what
/// one process remembers of another's change (a room's retention policy, an upload a download
/// waits for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_made_at_once_through_both_processes_hold_once() {
    let Ok(url) = std::env::var("PARVIS_TEST_PG") else {
        eprintln!("PARVIS_TEST_PG is not set: the cluster test needs a PostgreSQL");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut procs = group(dir.path(), &url, 2);
    for proc in &mut procs {
        proc.env.extend(
            [
                ("PARVIS_REGISTRATION__REQUIRES_TOKEN", "true"),
                ("PARVIS_REGISTRATION__TOKENS", r#"["static-one"]"#),
                ("PARVIS_MEDIA__MAX_PENDING_UPLOADS", "1"),
                ("PARVIS_RETENTION__ENABLED", "true"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
    }
    start_together(&mut procs).await;
    let (a, b) = (procs[0].server(), procs[1].server());

    // A token with one use, spent by four registrations at once, two through each process:
    // one account is made, and both processes count it completed.
    account(&a, "root").await;
    let root = root_admin(&procs[0]).await;
    let tokens = "/_synapse/admin/v1/registration_tokens";
    let created = a
        .post(
            &format!("{tokens}/new"),
            &root,
            json!({ "token": "once", "uses_allowed": 1 }),
        )
        .await;
    assert_eq!(created["token"], "once", "{created}");
    let attempts: Vec<_> = (0..4)
        .map(|i| {
            let server = procs[i % 2].server();
            tokio::spawn(async move {
                register_with_token(&server, &format!("once{i}"), "once")
                    .await
                    .0
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for attempt in attempts {
        statuses.push(attempt.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    for server in [&a, &b] {
        let shown = server.get(&format!("{tokens}/once"), &root).await;
        assert_eq!(
            (shown["completed"].as_u64(), shown["pending"].as_u64()),
            (Some(1), Some(0)),
            "{shown}"
        );
    }

    // One webhook name per room, asked through both processes at once.
    let alice = account(&a, "alice").await;
    let room = a
        .create_room(&alice, json!({ "preset": "private_chat" }))
        .await;
    let hooks = format!("/_parvis/client/v1/rooms/{}/webhooks", enc(&room));
    let answers = at_once(
        &procs,
        reqwest::Method::POST,
        &hooks,
        &alice,
        json!({ "name": "Jira" }),
    )
    .await;
    let made: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .collect();
    assert_eq!(made.len(), 1, "{answers:?}");
    let refused = answers
        .iter()
        .find(|(status, _)| *status != StatusCode::OK)
        .unwrap();
    assert_eq!(
        (refused.0, refused.1["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_INVALID_PARAM")),
        "{answers:?}"
    );
    let listed = b.get(&hooks, &alice).await;
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 1, "{listed}");

    // One pending upload allowed: two URIs asked at once through both, one is given.
    let answers = at_once(
        &procs,
        reqwest::Method::POST,
        "/_matrix/media/v1/create",
        &alice,
        json!({}),
    )
    .await;
    let statuses: Vec<_> = answers.iter().map(|(status, _)| *status).collect();
    assert!(
        statuses.contains(&StatusCode::OK) && statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{answers:?}"
    );
    let uri = answers
        .iter()
        .find_map(|(_, body)| body["content_uri"].as_str())
        .unwrap()
        .trim_start_matches("mxc://")
        .to_owned();

    // A download waiting on A gets the upload made through B (no wake-up crosses processes:
    // A looks again).
    let waiting = {
        let url = format!(
            "{}/_matrix/client/v1/media/download/{uri}?timeout_ms=20000",
            a.base
        );
        let (http, alice) = (a.http.clone(), alice.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let res = http.get(url).bearer_auth(alice).send().await.unwrap();
            (
                res.status(),
                res.bytes().await.unwrap().to_vec(),
                started.elapsed(),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let put = b
        .http
        .put(format!("{}/_matrix/media/v3/upload/{uri}", b.base))
        .bearer_auth(&alice)
        .header("content-type", "text/plain")
        .body("made through B")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let (status, content, waited) = waiting.await.unwrap();
    assert_eq!(
        (status, String::from_utf8_lossy(&content).as_ref()),
        (StatusCode::OK, "made through B")
    );
    assert!(waited < Duration::from_secs(10), "{waited:?}");

    // A room's retention policy set through B, after A looked it up: A hides what expired.
    a.send_text(&alice, &room, "old", "soon expired").await;
    let messages = format!(
        "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50",
        enc(&room)
    );
    let bodies_in = |answer: &Value| -> Vec<String> {
        answer["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
            .collect()
    };
    let seen = a.get(&messages, &alice).await;
    assert_eq!(bodies_in(&seen), ["soon expired"], "{seen}");
    b.put(
        &format!(
            "/_matrix/client/v3/rooms/{}/state/m.room.retention/",
            enc(&room)
        ),
        &alice,
        json!({ "max_lifetime": 1000 }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    eventually("A hides the expired message", || async {
        bodies_in(&a.get(&messages, &alice).await)
            .is_empty()
            .then_some(())
    })
    .await;
}

/// Notification count of `room` in a /sync answer.
fn notification_count(sync: &Value, room: &str) -> u64 {
    sync["rooms"]["join"][room]["unread_notifications"]["notification_count"]
        .as_u64()
        .unwrap_or(0)
}

/// A single process writes a member's counts only every few notifications (its readers add the
/// entries after the stored value); a group of processes reads stored values only. A group
/// started on the database of a single process first stores what it left out
/// (`counts_store::store_unstored`), so its processes serve the same counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_started_after_a_single_process_serves_its_counts() {
    let Ok(url) = std::env::var("PARVIS_TEST_PG") else {
        eprintln!("PARVIS_TEST_PG is not set: the cluster test needs a PostgreSQL");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut procs = group(dir.path(), &url, 2);
    let set_shared = |proc: &mut Proc, shared: &str| {
        for (key, value) in &mut proc.env {
            if key == "PARVIS_STORAGE__POSTGRES__SHARED" {
                *value = shared.to_owned();
            }
        }
    };
    set_shared(&mut procs[0], "false");
    procs[0].start().await;
    let a = procs[0].server();
    let (_, alice) = a.register("alice").await;
    let (_, bob) = a.register("bob").await;
    let room = a
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    a.join(&bob, &room).await;
    for i in 0..70 {
        a.send_text(&alice, &room, &format!("m{i}"), "hello").await;
    }
    assert_eq!(
        notification_count(&sync(&a, &bob, None, 0).await, &room),
        70
    );
    procs[0].stop();

    set_shared(&mut procs[0], "true");
    start_together(&mut procs).await;
    for proc in &procs {
        let answer = sync(&proc.server(), &bob, None, 0).await;
        assert_eq!(
            notification_count(&answer, &room),
            70,
            "{}",
            answer["rooms"]
        );
    }
    procs[1]
        .server()
        .send_text(&alice, &room, "m70", "hello")
        .await;
    let server = procs[0].server();
    eventually("the next message is counted", || async {
        (notification_count(&sync(&server, &bob, None, 0).await, &room) == 71).then_some(())
    })
    .await;
}
