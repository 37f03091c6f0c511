//! The control socket, `<storage.path>/control.sock`: how `parvis backup` reaches the running
//! server (whose database it cannot open, RocksDB's lock being held). Only the server's own user
//! may connect: the socket is made mode 0600, in the data folder that holds the database anyway.
//!
//! One request per connection, a JSON line: `{"command": "backup", "out": "/absolute/folder"}`,
//! `{"command": "export_room", "room_id", "out": "/absolute/file.tar"}` or
//! `{"command": "export_user", "user_id", "out"}`. The answer is JSON lines:
//! `{"progress": {"step", "done", "total"}}` while the job runs, then `{"job": {...}}` (the finished
//! job, see `services::jobs`) or `{"error": "..."}`.

use std::{path::PathBuf, sync::Arc};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
};

use crate::services::Services;

/// The socket's name in the data folder.
pub const SOCKET: &str = "control.sock";

/// Requests longer than this are refused.
const MAX_REQUEST_BYTES: u64 = 64 << 10;

#[derive(Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
enum Request {
    Backup {
        out: PathBuf,
    },
    ExportRoom {
        room_id: ruma::OwnedRoomId,
        out: PathBuf,
    },
    ExportUser {
        user_id: ruma::OwnedUserId,
        out: PathBuf,
    },
}

/// Listens on the control socket until `stop`; a socket left by a previous process (its database
/// lock is ours now) is replaced. When the socket cannot be made (a data path too long for a Unix
/// socket name), the server runs without it and says so.
pub fn spawn(
    services: Arc<Services>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let path = services.config().storage.path.join(SOCKET);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).and_then(|listener| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(listener)
    });
    tokio::spawn(async move {
        let listener = match listener {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(
                    "no control socket at {} ({e}): `parvis backup` cannot reach this server",
                    path.display()
                );
                return;
            }
        };
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        tokio::spawn(serve(services.clone(), stream));
                    }
                }
            }
        }
        let _ = std::fs::remove_file(&path);
    })
}

async fn serve(services: Arc<Services>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST_BYTES));
    let answer = match reader.read_line(&mut line).await {
        Ok(_) => match serde_json::from_str::<Request>(&line) {
            Ok(request) => run(&services, request, &mut write).await,
            Err(e) => json!({ "error": format!("bad request: {e}") }),
        },
        Err(e) => json!({ "error": format!("cannot read the request: {e}") }),
    };
    let _ = send(&mut write, &answer).await;
}

async fn run(
    services: &Arc<Services>,
    request: Request,
    write: &mut tokio::net::unix::OwnedWriteHalf,
) -> Value {
    let (Request::Backup { out }
    | Request::ExportRoom { out, .. }
    | Request::ExportUser { out, .. }) = &request;
    if !out.is_absolute() {
        return json!({ "error": "the output path must be absolute" });
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let by = "command line";
    // Recording the job writes to the database: on the blocking pool.
    let background = services.clone();
    let started = services
        .run(move |_| start(&background, request, by, tx))
        .await;
    let handle = match started {
        Ok((_, handle)) => handle,
        Err(e) => return json!({ "error": e.message }),
    };
    while let Some(progress) = rx.recv().await {
        // A client that went away does not stop the job.
        let _ = send(write, &json!({ "progress": progress })).await;
    }
    match handle.await {
        Ok(Ok(job)) => json!({ "job": job }),
        Ok(Err(e)) => json!({ "error": e.message }),
        Err(e) => json!({ "error": format!("the job's task failed: {e}") }),
    }
}

type Started = crate::error::Result<(
    crate::services::jobs::Job,
    tokio::task::JoinHandle<crate::error::Result<crate::services::jobs::Job>>,
)>;

/// Starts the job a request asks for (blocking: it records the job).
fn start(
    services: &Arc<Services>,
    request: Request,
    by: &str,
    tx: tokio::sync::mpsc::UnboundedSender<crate::services::jobs::Progress>,
) -> Started {
    match request {
        Request::Backup { out } => {
            crate::services::backup::start_job(services, out, 0, by, Some(tx))
        }
        Request::ExportRoom { room_id, out } => {
            let subject = crate::services::export::Subject::Room(room_id);
            crate::services::export::start_job(services, subject, Some(out), by, Some(tx))
        }
        Request::ExportUser { user_id, out } => {
            let subject = crate::services::export::Subject::User(user_id);
            crate::services::export::start_job(services, subject, Some(out), by, Some(tx))
        }
    }
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, value: &Value) -> std::io::Result<()> {
    let mut line = value.to_string();
    line.push('\n');
    write.write_all(line.as_bytes()).await
}
