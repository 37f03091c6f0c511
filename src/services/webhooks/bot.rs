//! The integration user (`@integrations:<server>`, `[webhooks] integration_user`): invited into a
//! room, it joins; there, `!webhook create <name>`, `!webhook list` and `!webhook revoke <name>`
//! manage the room's webhooks (`manage`), answered in the room, the new URL sent to the asker in
//! a direct chat.
//!
//! Its work is queued in the commit of the event that asks for it (`WEBHOOK_COMMANDS`: an
//! invite of the integration user, a message starting with `!webhook` in a room it is in), and a
//! worker takes it from there: a command acknowledged to the client is answered, also after a
//! restart. The worker runs commands one at a time; each is done or answered with why not.

use std::sync::{Arc, atomic::Ordering};

use ruma::{CanonicalJsonObject, CanonicalJsonValue, OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{WEBHOOK_COMMANDS, manage};
use crate::{
    error::Result,
    services::{
        Services,
        globals::Commit,
        rooms::{
            self,
            create::{CreateRoom, Preset},
            membership::Membership,
        },
        timeline::append::NewEvent,
    },
    storage::keys::KeyReader,
};

/// Commands taken from the queue per round.
const BATCH: usize = 20;
/// Commands queued at most; beyond, new ones are not queued (logged): a flood of `!webhook`
/// messages cannot fill the disk.
pub const MAX_QUEUED_COMMANDS: usize = 10_000;

/// The integration user of this server.
pub fn integration_user(s: &Services) -> Option<OwnedUserId> {
    let config = s.webhooks.config();
    if !config.enabled {
        return None;
    }
    OwnedUserId::try_from(format!(
        "@{}:{}",
        config.integration_user,
        s.globals.server_name()
    ))
    .ok()
}

/// Creates the integration user at start-up when it does not exist, and counts its queue.
pub fn ensure_user(s: &Services) -> Result<()> {
    let Some(bot) = integration_user(s) else {
        return Ok(());
    };
    let mut queued = 0;
    for entry in s.globals.db.scan_prefix(WEBHOOK_COMMANDS, &[]) {
        entry?;
        queued += 1;
    }
    s.webhooks.commands_queued.store(queued, Ordering::SeqCst);
    if s.users.ensure_exists(&bot)? {
        s.users
            .set_profile(&bot, |a| a.displayname = Some("Integrations".to_owned()))?;
        tracing::info!("created {bot}, the integration user (webhooks)");
    }
    Ok(())
}

fn text<'a>(event: &'a CanonicalJsonObject, field: &str) -> Option<&'a str> {
    match event.get(field)? {
        CanonicalJsonValue::String(s) => Some(s),
        _ => None,
    }
}

fn content_text<'a>(event: &'a CanonicalJsonObject, field: &str) -> Option<&'a str> {
    match event.get("content")? {
        CanonicalJsonValue::Object(content) => match content.get(field)? {
            CanonicalJsonValue::String(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// In the commit of a timeline event at `pos`: queues it when it is work for the integration user.
/// Returns whether it was queued (the worker is woken after the commit).
pub fn event_committed(
    s: &Services,
    c: &mut Commit,
    short_room: u64,
    pos: u64,
    short_event: u64,
    event: &CanonicalJsonObject,
) -> Result<bool> {
    let Some(bot) = integration_user(s) else {
        return Ok(false);
    };
    let wanted = match text(event, "type") {
        Some("m.room.member") => {
            text(event, "state_key") == Some(bot.as_str())
                && content_text(event, "membership") == Some("invite")
        }
        Some("m.room.message") => {
            text(event, "sender") != Some(bot.as_str())
                && content_text(event, "body").is_some_and(|b| b.starts_with("!webhook"))
                && s.membership.is_joined(short_room, &bot)?
        }
        _ => false,
    };
    if wanted && s.webhooks.commands_queued.fetch_add(1, Ordering::SeqCst) >= MAX_QUEUED_COMMANDS {
        s.webhooks.commands_queued.fetch_sub(1, Ordering::SeqCst);
        tracing::warn!(
            "integration user: {MAX_QUEUED_COMMANDS} commands queued, the one at {pos} is dropped"
        );
        return Ok(false);
    }
    if wanted {
        let value = [short_room.to_be_bytes(), short_event.to_be_bytes()].concat();
        c.batch.put(WEBHOOK_COMMANDS, pos.to_be_bytes(), value);
    }
    Ok(wanted)
}

/// Starts the worker that carries out queued commands.
pub fn spawn(
    services: Arc<Services>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match services.run(run_queued).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!("integration user: {}", e.message);
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
            tokio::select! {
                _ = services.webhooks.commands_wake.notified() => {}
                _ = stop.changed() => return,
            }
        }
    })
}

/// Carries out up to [`BATCH`] queued commands; true when there were any.
fn run_queued(s: &Services) -> Result<bool> {
    let mut taken = Vec::new();
    for entry in s.globals.db.scan_prefix(WEBHOOK_COMMANDS, &[]).take(BATCH) {
        taken.push(entry?);
    }
    for (key, value) in &taken {
        let mut r = KeyReader::new(value);
        if let (Some(short_room), Some(short_event)) = (r.u64(), r.u64())
            && let Err(e) = carry_out(s, short_room, short_event)
        {
            tracing::warn!("integration user: a command failed: {}", e.message);
        }
        let mut done = crate::storage::Batch::new();
        done.delete(WEBHOOK_COMMANDS, key.clone());
        s.globals.db.write(done)?;
        let _ = s
            .webhooks
            .commands_queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_sub(1))
            });
    }
    Ok(!taken.is_empty())
}

fn carry_out(s: &Services, short_room: u64, short_event: u64) -> Result<()> {
    let Some(bot) = integration_user(s) else {
        return Ok(());
    };
    let room_id = s.short.room_id(short_room)?;
    let Some(event) = rooms::event_by_short(s, short_event, &room_id)? else {
        return Ok(());
    };
    let content: Value = serde_json::from_str(event.pdu.content.get()).unwrap_or_default();
    if event.pdu.state_key.is_some() {
        // Invited: join, when still invited.
        if s.membership.membership(short_room, &bot)? == Some(Membership::Invite) {
            rooms::set_membership(s, &room_id, &bot, &bot, "join", None, None)?;
            notice(s, &room_id, &bot, &usage())?;
        }
        return Ok(());
    }
    let body = content
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let answer = command(s, &room_id, &bot, &event.pdu.sender, body);
    notice(s, &room_id, &bot, &answer)
}

fn usage() -> String {
    "I manage this room's webhooks: `!webhook create <name>` (the URL comes to you in a direct \
     message), `!webhook list`, `!webhook revoke <name>`."
        .to_owned()
}

/// Carries out one `!webhook` command; returns the answer for the room.
fn command(s: &Services, room_id: &RoomId, bot: &UserId, asker: &UserId, body: &str) -> String {
    let rest = body.trim_start_matches("!webhook").trim();
    let (verb, argument) = rest
        .split_once(char::is_whitespace)
        .map_or((rest, ""), |(v, a)| (v, a.trim()));
    let outcome = match verb {
        "create" if asker.server_name() != s.globals.server_name() => Ok(format!(
            "Webhooks are created by users of {}.",
            s.globals.server_name()
        )),
        "create" => manage::create(
            s,
            room_id,
            asker,
            manage::NewHook {
                name: argument,
                avatar_url: None,
            },
        )
        .and_then(|(hook, secret)| {
            let url = manage::url_of(s, &hook.path(&secret));
            let dm = direct_chat(s, bot, asker)?;
            notice(
                s,
                &dm,
                bot,
                &format!(
                    "The URL of webhook \"{}\" in {room_id}: {url}\nKeep it secret: \
                             whoever has it can post to the room. Example:\ncurl -X POST -H \
                             'Content-Type: application/json' -d '{{\"text\": \"Hello\"}}' {url}",
                    hook.name
                ),
            )?;
            Ok(format!(
                "Created webhook \"{}\" (posting as {}); {asker}, its URL is in our \
                         direct chat.",
                hook.name, hook.user_id
            ))
        }),
        "list" => manage::list(s, room_id, asker).map(|hooks| {
            if hooks.is_empty() {
                "This room has no webhooks.".to_owned()
            } else {
                let lines: Vec<String> = hooks
                    .iter()
                    .map(|h| {
                        format!(
                            "- \"{}\" (posting as {}, by {})",
                            h.name, h.user_id, h.created_by
                        )
                    })
                    .collect();
                format!("This room's webhooks:\n{}", lines.join("\n"))
            }
        }),
        "revoke" => manage::revoke(s, room_id, asker, argument).map(|hook| {
            format!(
                "Revoked webhook \"{}\": its URL no longer works.",
                hook.name
            )
        }),
        _ => Ok(usage()),
    };
    outcome.unwrap_or_else(|e| format!("Sorry, {asker}: {}", e.message))
}

/// The integration user's direct chat with `user` (made, and `user` invited, when there is none
/// it and the user are still in).
fn direct_chat(s: &Services, bot: &UserId, user: &UserId) -> Result<OwnedRoomId> {
    if let Some(room) = s.webhooks.dm_room(user)?
        && let Some(short) = s.short.room(&room)?
        && s.membership.is_joined(short, bot)?
        && matches!(
            s.membership.membership(short, user)?,
            Some(Membership::Join | Membership::Invite)
        )
    {
        return Ok(room);
    }
    let room = rooms::create::create_room(
        s,
        bot,
        CreateRoom {
            preset: Some(Preset::TrustedPrivateChat),
            invite: vec![user.to_owned()],
            is_direct: true,
            name: Some("Webhooks".to_owned()),
            ..Default::default()
        },
    )?;
    s.webhooks.set_dm_room(user, &room)?;
    Ok(room)
}

fn notice(s: &Services, room_id: &RoomId, bot: &UserId, text: &str) -> Result<()> {
    rooms::send(
        s,
        room_id,
        bot,
        NewEvent::message(
            ruma::events::TimelineEventType::RoomMessage,
            json!({ "msgtype": "m.notice", "body": text }),
        ),
    )?;
    Ok(())
}
