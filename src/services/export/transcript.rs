//! The readable transcript of a room export: one self-contained HTML file (inline CSS, images as
//! `data:` URIs up to a size, other files linked into the archive's `media/` folder, no script).
//! Messages in timeline order with their sender's display name and time (UTC); an edited message
//! shows its latest text, marked "(edited)"; a redacted one "Message deleted"; reactions under the
//! message they react to, with counts; thread replies folded under their root; replies quote what
//! they answer; membership, name and topic changes as notices.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::util::html_escape;

/// How a referenced medium appears in the transcript.
pub enum MediaLink {
    /// Embedded: content type and bytes.
    Inline(String, Vec<u8>),
    /// A path inside the archive.
    File(String),
}

struct Entry {
    event_id: String,
    sender: String,
    ts: u64,
    kind: Kind,
}

enum Kind {
    Message {
        body: String,
        media: Option<String>,
        is_image: bool,
        reply_to: Option<String>,
        deleted: bool,
    },
    Notice(String),
}

#[derive(Default)]
pub struct Transcript {
    room_id: String,
    name: Option<String>,
    topic: Option<String>,
    entries: Vec<Entry>,
    /// Event id → index in `entries`.
    index: HashMap<String, usize>,
    /// Edited event → (its latest replacement body, that replacement's ts).
    edits: HashMap<String, (String, u64)>,
    /// Event → reaction key → senders.
    reactions: HashMap<String, BTreeMap<String, Vec<String>>>,
    /// Thread root → its replies' indexes, in order.
    threads: HashMap<String, Vec<usize>>,
    in_thread: std::collections::HashSet<usize>,
    names: HashMap<String, String>,
}

fn text(value: &Value, field: &str) -> Option<String> {
    value.get(field).and_then(Value::as_str).map(str::to_owned)
}

impl Transcript {
    pub fn new(room_id: &str) -> Self {
        Self {
            room_id: room_id.to_owned(),
            ..Default::default()
        }
    }

    fn name_of(&self, user: &str) -> String {
        self.names
            .get(user)
            .cloned()
            .unwrap_or_else(|| user.to_owned())
    }

    /// Takes the next event of the room (client format), in timeline order.
    pub fn add(&mut self, event: &Value) {
        let (Some(kind), Some(event_id), Some(sender)) = (
            text(event, "type"),
            text(event, "event_id"),
            text(event, "sender"),
        ) else {
            return;
        };
        let ts = event
            .get("origin_server_ts")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let content = event.get("content").cloned().unwrap_or(Value::Null);
        let relates = content.get("m.relates_to");
        let rel_type = relates.and_then(|r| text(r, "rel_type"));
        let target = relates.and_then(|r| text(r, "event_id"));
        let who = self.name_of(&sender);
        let notice = match kind.as_str() {
            "m.room.create" => Some(format!("{who} created the room")),
            "m.room.name" => {
                self.name = text(&content, "name");
                Some(format!(
                    "{who} named the room “{}”",
                    self.name.clone().unwrap_or_default()
                ))
            }
            "m.room.topic" => {
                self.topic = text(&content, "topic");
                Some(format!(
                    "{who} set the topic to “{}”",
                    self.topic.clone().unwrap_or_default()
                ))
            }
            "m.room.member" => {
                let target_user = text(event, "state_key").unwrap_or_default();
                let before = self.name_of(&target_user);
                if let Some(name) = text(&content, "displayname") {
                    self.names.insert(target_user.clone(), name);
                }
                let after = self.name_of(&target_user);
                Some(match text(&content, "membership").as_deref() {
                    Some("join") if before != after && before != target_user => {
                        format!("{before} is now called {after}")
                    }
                    Some("join") => format!("{after} joined"),
                    Some("invite") => format!("{who} invited {after}"),
                    Some("leave") if sender == target_user => format!("{after} left"),
                    Some("leave") => format!("{who} removed {after}"),
                    Some("ban") => format!("{who} banned {after}"),
                    Some("knock") => format!("{after} asked to join"),
                    _ => format!("{after}'s membership changed"),
                })
            }
            "m.reaction" => {
                if let (Some("m.annotation"), Some(target)) = (rel_type.as_deref(), target)
                    && let Some(key) = relates.and_then(|r| text(r, "key"))
                {
                    self.reactions
                        .entry(target)
                        .or_default()
                        .entry(key)
                        .or_default()
                        .push(who);
                }
                return;
            }
            "m.room.redaction" => return,
            "m.room.message" | "m.sticker" | "m.room.encrypted" => None,
            _ if event.get("state_key").is_some() => Some(format!("{who} changed {kind}")),
            _ => return,
        };
        if let Some(notice) = notice {
            self.push(event_id, sender, ts, Kind::Notice(notice), None);
            return;
        }
        if rel_type.as_deref() == Some("m.replace")
            && let Some(target) = target
        {
            let new = content
                .get("m.new_content")
                .and_then(|c| text(c, "body"))
                .unwrap_or_default();
            let newer = self.edits.get(&target).is_none_or(|(_, at)| *at <= ts);
            if newer {
                self.edits.insert(target, (new, ts));
            }
            return;
        }
        let deleted = content.as_object().is_none_or(|c| c.is_empty());
        let body = if kind == "m.room.encrypted" {
            "(encrypted message)".to_owned()
        } else {
            text(&content, "body").unwrap_or_default()
        };
        let media =
            text(&content, "url").or_else(|| content.get("file").and_then(|f| text(f, "url")));
        let is_image =
            text(&content, "msgtype").as_deref() == Some("m.image") || kind == "m.sticker";
        let reply_to = relates
            .and_then(|r| r.get("m.in_reply_to"))
            .and_then(|r| text(r, "event_id"));
        let thread = (rel_type.as_deref() == Some("m.thread"))
            .then_some(target)
            .flatten();
        self.push(
            event_id,
            sender,
            ts,
            Kind::Message {
                body,
                media,
                is_image,
                reply_to,
                deleted,
            },
            thread,
        );
    }

    fn push(
        &mut self,
        event_id: String,
        sender: String,
        ts: u64,
        kind: Kind,
        thread: Option<String>,
    ) {
        let i = self.entries.len();
        self.index.insert(event_id.clone(), i);
        if let Some(root) = thread {
            self.threads.entry(root).or_default().push(i);
            self.in_thread.insert(i);
        }
        self.entries.push(Entry {
            event_id,
            sender,
            ts,
            kind,
        });
    }

    /// Counts: (messages, thread replies).
    pub fn counts(&self) -> (usize, usize) {
        let messages = self
            .entries
            .iter()
            .filter(|e| matches!(e.kind, Kind::Message { .. }))
            .count();
        (messages, self.in_thread.len())
    }

    /// The media of the room's messages (to fetch before rendering).
    pub fn media(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|e| match &e.kind {
                Kind::Message { media, .. } => media.clone(),
                Kind::Notice(_) => None,
            })
            .collect()
    }

    /// The HTML document; `media` says how to show an `mxc://` URI.
    pub fn render(
        &self,
        server: &str,
        exported_ms: u64,
        media: &dyn Fn(&str) -> Option<MediaLink>,
    ) -> String {
        let title = self.name.clone().unwrap_or_else(|| self.room_id.clone());
        let (messages, replies) = self.counts();
        let mut out = String::with_capacity(64 * self.entries.len() + 4096);
        out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
        out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
        out.push_str(&format!(
            "<title>{} — transcript</title>",
            html_escape(&title)
        ));
        out.push_str(STYLE);
        out.push_str("</head><body><header class=\"room\">");
        out.push_str(&format!("<h1>{}</h1>", html_escape(&title)));
        if let Some(topic) = &self.topic {
            out.push_str(&format!("<p class=\"topic\">{}</p>", html_escape(topic)));
        }
        out.push_str(&format!(
            "<p class=\"about\">Room <code>{}</code> · {messages} messages ({replies} in threads) · exported from {} on {}</p></header><main>",
            html_escape(&self.room_id),
            html_escape(server),
            format_time(exported_ms)
        ));
        for (i, entry) in self.entries.iter().enumerate() {
            if !self.in_thread.contains(&i) {
                self.render_entry(&mut out, entry, media);
            }
        }
        out.push_str("</main></body></html>\n");
        out
    }

    fn render_entry(
        &self,
        out: &mut String,
        entry: &Entry,
        media: &dyn Fn(&str) -> Option<MediaLink>,
    ) {
        let id = html_escape(&entry.event_id);
        let Kind::Message {
            body,
            media: mxc,
            is_image,
            reply_to,
            deleted,
        } = &entry.kind
        else {
            if let Kind::Notice(notice) = &entry.kind {
                out.push_str(&format!(
                    "<p class=\"notice\" id=\"{id}\">{} <time>{}</time></p>",
                    html_escape(notice),
                    format_time(entry.ts)
                ));
            }
            return;
        };
        out.push_str(&format!(
            "<article class=\"message\" id=\"{id}\"><div class=\"meta\"><span class=\"sender\">{}</span> <span class=\"user\">{}</span> <time>{}</time></div>",
            html_escape(&self.name_of(&entry.sender)),
            html_escape(&entry.sender),
            format_time(entry.ts)
        ));
        if let Some(quoted) = reply_to
            .as_ref()
            .and_then(|r| self.index.get(r))
            .map(|i| &self.entries[*i])
        {
            let snippet = match (&quoted.kind, self.edits.get(&quoted.event_id)) {
                (Kind::Message { deleted: true, .. }, _) => "Message deleted".to_owned(),
                (Kind::Message { .. }, Some((latest, _))) => latest.chars().take(140).collect(),
                (Kind::Message { body, .. }, None) => body.chars().take(140).collect(),
                (Kind::Notice(n), _) => n.clone(),
            };
            out.push_str(&format!(
                "<blockquote class=\"reply\"><a href=\"#{}\">In reply to {}</a>: {}</blockquote>",
                html_escape(&quoted.event_id),
                html_escape(&self.name_of(&quoted.sender)),
                html_escape(&snippet)
            ));
        }
        if *deleted {
            out.push_str("<div class=\"body deleted\">Message deleted</div>");
        } else {
            let (shown, edited) = match self.edits.get(&entry.event_id) {
                Some((latest, _)) => (latest.as_str(), true),
                None => (body.as_str(), false),
            };
            out.push_str("<div class=\"body\">");
            out.push_str(&html_escape(shown).replace('\n', "<br>"));
            if edited {
                out.push_str(" <span class=\"edited\">(edited)</span>");
            }
            out.push_str("</div>");
            if let Some(mxc) = mxc {
                match media(mxc) {
                    Some(MediaLink::Inline(content_type, bytes)) if *is_image => {
                        use base64::Engine;
                        out.push_str(&format!(
                            "<img class=\"media\" alt=\"{}\" src=\"data:{};base64,{}\">",
                            html_escape(body),
                            html_escape(&content_type),
                            base64::engine::general_purpose::STANDARD.encode(bytes)
                        ));
                    }
                    Some(MediaLink::Inline(..)) | None => out.push_str(&format!(
                        "<p class=\"file\">Attachment: {} (not in the export)</p>",
                        html_escape(mxc)
                    )),
                    Some(MediaLink::File(path)) => out.push_str(&format!(
                        "<p class=\"file\"><a href=\"{}\">Attachment: {}</a></p>",
                        html_escape(&path),
                        html_escape(body)
                    )),
                }
            }
        }
        if let Some(reactions) = self.reactions.get(&entry.event_id) {
            out.push_str("<div class=\"reactions\">");
            for (key, senders) in reactions {
                out.push_str(&format!(
                    "<span class=\"reaction\" title=\"{}\">{} {}</span>",
                    html_escape(&senders.join(", ")),
                    html_escape(key),
                    senders.len()
                ));
            }
            out.push_str("</div>");
        }
        if let Some(replies) = self.threads.get(&entry.event_id) {
            out.push_str(&format!(
                "<details class=\"thread\" open><summary>Thread: {} {}</summary>",
                replies.len(),
                if replies.len() == 1 {
                    "reply"
                } else {
                    "replies"
                }
            ));
            for i in replies {
                self.render_entry(out, &self.entries[*i], media);
            }
            out.push_str("</details>");
        }
        out.push_str("</article>");
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` of a time in milliseconds since the epoch.
pub fn format_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

const STYLE: &str = "<style>
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f6f7f9;color:#17191c}
header.room{background:#fff;border-bottom:1px solid #dde1e6;padding:16px 24px}
header.room h1{margin:0 0 4px;font-size:22px}.topic{margin:0 0 4px;color:#444}.about{margin:0;color:#737d8c;font-size:13px}
main{max-width:900px;margin:0 auto;padding:16px 24px}
.message{background:#fff;border:1px solid #e3e6ea;border-radius:8px;padding:8px 12px;margin:8px 0}
.meta{font-size:13px;color:#737d8c}.sender{font-weight:600;color:#0b7a57}.user{margin:0 6px}
.body{white-space:normal;word-wrap:break-word;margin-top:2px}.deleted{color:#8d97a5;font-style:italic}
.edited{color:#8d97a5;font-size:12px}
.notice{color:#737d8c;font-size:13px;margin:6px 4px}.notice time{margin-left:6px;font-size:12px}
.reply{margin:4px 0;padding:2px 8px;border-left:3px solid #c6cbd2;color:#555;font-size:13px}
.reactions{margin-top:6px}.reaction{display:inline-block;border:1px solid #c6cbd2;border-radius:12px;padding:0 8px;margin-right:4px;font-size:13px;background:#f4f6f8}
.thread{margin:8px 0 0 16px;border-left:2px solid #0b7a57;padding-left:10px}.thread summary{cursor:pointer;color:#0b7a57;font-size:13px}
img.media{max-width:100%;max-height:480px;display:block;margin-top:6px;border-radius:4px}.file{margin:6px 0 0}
</style>";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn times_in_utc() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(1_796_294_861_000), "2026-12-03 10:47:41 UTC");
        assert_eq!(format_time(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn edits_reactions_threads_and_escaping() {
        let mut t = Transcript::new("!r:x");
        let ev = |id: &str, kind: &str, sender: &str, content: Value| json!({ "event_id": id, "type": kind, "sender": sender, "origin_server_ts": 1000, "content": content });
        t.add(&json!({ "event_id": "$m", "type": "m.room.member", "sender": "@a:x", "state_key": "@a:x",
            "origin_server_ts": 1, "content": { "membership": "join", "displayname": "Alice <3" } }));
        t.add(&ev(
            "$1",
            "m.room.message",
            "@a:x",
            json!({ "msgtype": "m.text", "body": "first <b>draft</b>" }),
        ));
        t.add(&ev(
            "$2",
            "m.room.message",
            "@a:x",
            json!({ "msgtype": "m.text", "body": "* fixed",
            "m.new_content": { "msgtype": "m.text", "body": "final text" },
            "m.relates_to": { "rel_type": "m.replace", "event_id": "$1" } }),
        ));
        t.add(&ev("$3", "m.reaction", "@b:x", json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": "$1", "key": "👍" } })));
        t.add(&ev(
            "$4",
            "m.room.message",
            "@b:x",
            json!({ "msgtype": "m.text", "body": "in the thread",
            "m.relates_to": { "rel_type": "m.thread", "event_id": "$1" } }),
        ));
        t.add(&ev("$5", "m.room.message", "@b:x", json!({})));
        let html = t.render("x", 0, &|_| None);
        assert!(
            html.contains("final text") && html.contains("(edited)"),
            "{html}"
        );
        assert!(!html.contains("first <b>"), "not escaped: {html}");
        assert!(html.contains("Alice &lt;3 joined"));
        assert!(html.contains("👍 1"));
        assert!(html.contains("Thread: 1 reply") && html.contains("in the thread"));
        assert!(html.contains("Message deleted"));
        assert_eq!(t.counts(), (3, 1));
    }
}
