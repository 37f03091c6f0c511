//! Reports of abusive content sent by users (`POST /rooms/{roomId}/report/{eventId}`,
//! `/rooms/{roomId}/report`, `/users/{userId}/report`), kept for the server's admins, who read and
//! delete them with the admin API (`GET`/`DELETE /_synapse/admin/v1/event_reports...`).
//!
//! `submit` checks what a user may report; `admin_view` builds the admin API's answers. Every
//! report is one record under a number handed out in increasing order (never reused, so a deleted
//! report's number does not come back).

pub mod admin_view;
pub mod submit;

use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    storage::{Batch, Db, Map, db::encode_json, keys::u64_from},
};

/// report id u64 → [`Report`] as JSON.
pub const REPORTS: Map = Map("reports");
/// `next_id` → u64: the number of the next report.
pub const REPORTS_META: Map = Map("reports_meta");
pub const MAPS: &[Map] = &[REPORTS, REPORTS_META];

const KEY_NEXT_ID: &[u8] = b"next_id";

/// What a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    Event,
    Room,
    User,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub kind: ReportKind,
    /// When the report arrived (ms since the epoch).
    pub received_ts: u64,
    /// Who reported.
    pub reporter: OwnedUserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The score of an event report (-100 most offensive … 0), when the reporter gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<OwnedRoomId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<OwnedEventId>,
    /// The reported user (user reports) or the reported event's sender (event reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<OwnedUserId>,
}

pub struct Reports {
    db: Db,
    /// Serialises the numbering of new reports.
    numbering: std::sync::Mutex<()>,
}

impl Reports {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            numbering: Default::default(),
        }
    }

    /// Stores a report; returns its number.
    pub fn add(&self, report: &Report) -> Result<u64> {
        // Numbered once across the processes of a group too.
        self.db
            .read_then_write(&self.numbering, REPORTS_META, KEY_NEXT_ID, |stored| {
                let id = stored
                    .as_deref()
                    .map(crate::services::globals::read_u64)
                    .transpose()?
                    .unwrap_or(1);
                let mut batch = Batch::new();
                batch.put(REPORTS, id.to_be_bytes(), encode_json(report));
                batch.put(REPORTS_META, KEY_NEXT_ID, (id + 1).to_be_bytes());
                Ok((id, batch))
            })
    }

    pub fn get(&self, id: u64) -> Result<Option<Report>> {
        Ok(self.db.get_json(REPORTS, &id.to_be_bytes())?)
    }

    /// Deletes a report; returns whether it existed.
    pub fn delete(&self, id: u64) -> Result<bool> {
        if !self.db.contains(REPORTS, &id.to_be_bytes())? {
            return Ok(false);
        }
        let mut batch = Batch::new();
        batch.delete(REPORTS, id.to_be_bytes().to_vec());
        self.db.write(batch)?;
        Ok(true)
    }

    /// Every report of `kind`, oldest first.
    pub fn all(&self, kind: ReportKind) -> Result<Vec<(u64, Report)>> {
        let mut out = Vec::new();
        for entry in self.db.scan_prefix(REPORTS, &[]) {
            let (key, value) = entry?;
            let id = u64_from(&key).ok_or_else(|| Error::internal("corrupt report key"))?;
            let report: Report = crate::storage::db::decode_json(REPORTS, &value)?;
            if report.kind == kind {
                out.push((id, report));
            }
        }
        Ok(out)
    }
}
