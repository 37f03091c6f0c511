//! `parvis export-room ROOM --out FILE` and `parvis export-user USER --out FILE`: a running server
//! makes the archive itself (asked through its control socket); a stopped one's database is opened
//! here. What an archive holds: `services::export`.

use std::{os::unix::net::UnixStream, path::Path};

use serde_json::{Value, json};

use super::progress::ProgressView;
use crate::{
    config::Config,
    services::{Services, export::Subject},
};

pub fn export(config: &Config, subject: Subject, out: &Path) -> Result<Value, String> {
    let out = std::path::absolute(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let socket = config.storage.path.join(crate::api::control::SOCKET);
    if let Ok(stream) = UnixStream::connect(&socket) {
        let request = match &subject {
            Subject::Room(room_id) => {
                json!({ "command": "export_room", "room_id": room_id, "out": out })
            }
            Subject::User(user_id) => {
                json!({ "command": "export_user", "user_id": user_id, "out": out })
            }
        };
        return super::control::ask(stream, &request);
    }
    if !config.has_database() {
        return Err(format!("no database in {}", config.storage.path.display()));
    }
    let services = Services::open(config.clone()).map_err(|e| {
        format!(
            "cannot open the database ({}); a server that holds it answers on {}",
            e.message,
            crate::api::control::SOCKET
        )
    })?;
    let mut view = ProgressView::new();
    let result =
        crate::services::export::export(&services, &subject, &out, &mut |p| view.update(&p));
    view.finish();
    services.shutdown();
    result.map_err(|e| e.message)
}
