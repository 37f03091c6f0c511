//! User-interactive authentication sessions.

pub mod store;

use std::time::Duration;

use ruma::{OwnedUserId, UserId};
use serde_json::{Value, json};

use crate::{
    error::{Error, Result},
    storage::Db,
    util::{now_ms, random_string},
};
use store::{Session, Store};

/// A session not completed within this time is forgotten.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Sessions kept at once (anonymous `/register` calls create them): beyond, the oldest goes.
/// (In a group of processes, each process keeps this many of the sessions it created.)
pub const MAX_SESSIONS: usize = 10_000;

pub struct Uia {
    store: Store,
}

impl Default for Uia {
    /// Sessions in this process's memory.
    fn default() -> Self {
        Self {
            store: Store::Memory(Default::default()),
        }
    }
}

impl Uia {
    /// Sessions in the database, seen by every process of a group.
    pub fn shared(db: Db) -> Self {
        Self {
            store: Store::shared(db),
        }
    }

    /// A new session.
    fn start(&self, now: u64, owner: Option<&UserId>) -> Result<String> {
        let session = random_string(24);
        self.store.insert(
            &session,
            Session {
                completed: Vec::new(),
                created: now,
                owner: owner.map(ToOwned::to_owned),
                data: serde_json::Map::new(),
            },
            now,
        )?;
        Ok(session)
    }

    /// The stages a live session of `owner` completed (None: unknown, expired or another's).
    fn completed(
        &self,
        session: &str,
        owner: Option<&UserId>,
        now: u64,
    ) -> Result<Option<Vec<String>>> {
        Ok(match self.store.get(session)? {
            Some(s) if !s.live(now) => {
                self.store.take(session)?;
                None
            }
            Some(s) if s.owner.as_deref() == owner => Some(s.completed),
            _ => None,
        })
    }

    /// The user a live session confirms.
    pub fn owner(&self, session: &str) -> Result<Option<OwnedUserId>> {
        Ok(self
            .store
            .get(session)?
            .filter(|s| s.live(now_ms()))
            .and_then(|s| s.owner))
    }

    /// Records `stage` as completed by `user` outside the request (the single sign-on fallback
    /// page): only in a live session that confirms `user`. Answers whether it was recorded.
    pub fn complete_stage(&self, session: &str, stage: &str, user: &UserId) -> Result<bool> {
        let now = now_ms();
        Ok(self
            .store
            .update(session, |s| {
                let ok = s.live(now) && s.owner.as_deref() == Some(user);
                if ok && !s.completed.iter().any(|c| c == stage) {
                    s.completed.push(stage.to_owned());
                }
                ok
            })?
            .unwrap_or(false))
    }

    /// How many sessions are kept.
    pub fn session_count(&self) -> Result<usize> {
        self.store.len()
    }

    /// Keeps `value` under `key` in a live session (a stage's finding, e.g. a validated address).
    pub fn remember(&self, session: &str, key: &str, value: Value) -> Result<()> {
        self.store.update(session, |s| {
            s.data.insert(key.to_owned(), value);
        })?;
        Ok(())
    }

    /// [`Uia::check_with_data`] without the data.
    pub fn check(
        &self,
        owner: Option<&UserId>,
        auth: Option<&Value>,
        flows: &[Vec<&'static str>],
        params: Value,
        verify: impl FnOnce(&str, &Value) -> Result<bool>,
    ) -> Result<()> {
        self.check_with_data(owner, auth, flows, params, verify)
            .map(|_| ())
    }

    /// Checks the `auth` object of a request of `owner` (None: registration) against `flows`.
    /// `verify(stage, auth)` checks one stage's credentials (it runs without the sessions' lock;
    /// a stage the session already completed is not checked again). Returns `Ok(())` once a flow
    /// is complete (with what stages remembered, [`Uia::remember`]), else the 401 answer.
    pub fn check_with_data(
        &self,
        owner: Option<&UserId>,
        auth: Option<&Value>,
        flows: &[Vec<&'static str>],
        params: Value,
        verify: impl FnOnce(&str, &Value) -> Result<bool>,
    ) -> Result<serde_json::Map<String, Value>> {
        let now = now_ms();
        let body = |session: &str, completed: &[String], error: Option<(&str, &str)>| {
            let mut body = json!({
                "flows": flows.iter().map(|f| json!({ "stages": f })).collect::<Vec<_>>(),
                "params": params,
                "session": session,
                "completed": completed,
            });
            if let Some((code, message)) = error {
                body["errcode"] = json!(code);
                body["error"] = json!(message);
            }
            Error::uia(body)
        };

        let Some(auth) = auth.filter(|a| a.get("type").is_some() || a.get("session").is_some())
        else {
            return Err(body(&self.start(now, owner)?, &[], None));
        };
        // Every stage after the first request names the session it continues.
        let Some(session) = auth
            .get("session")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return Err(body(&self.start(now, owner)?, &[], None));
        };
        // A session this server did not hand out (or that expired) starts over.
        let Some(completed) = self.completed(&session, owner, now)? else {
            return Err(body(&self.start(now, owner)?, &[], None));
        };
        let flow_done = |completed: &[String]| {
            flows
                .iter()
                .any(|f| f.iter().all(|s| completed.iter().any(|c| c == s)))
        };
        let Some(stage) = auth.get("type").and_then(Value::as_str) else {
            // The fallback page completed the stages: the client retries with the session only.
            if flow_done(&completed) {
                return Ok(self
                    .store
                    .take(&session)?
                    .map(|s| s.data)
                    .unwrap_or_default());
            }
            return Err(body(&session, &completed, None));
        };
        if !flows.iter().any(|f| f.contains(&stage)) {
            return Err(body(
                &session,
                &completed,
                Some(("M_UNRECOGNIZED", "Unknown authentication stage")),
            ));
        }
        let already = completed.iter().any(|c| c == stage);
        match if already {
            Ok(true)
        } else {
            verify(stage, auth)
        } {
            Ok(true) => {}
            Ok(false) => {
                return Err(body(
                    &session,
                    &completed,
                    Some(("M_FORBIDDEN", "Invalid credentials")),
                ));
            }
            Err(e) if e.status.as_u16() == 401 => {
                return Err(body(&session, &completed, Some((e.errcode, &e.message))));
            }
            Err(e) => return Err(e),
        }
        // The stage is recorded; a session whose flow it completes is taken out (once, of
        // concurrent requests).
        let recorded = self.store.update(&session, |entry| {
            if !entry.completed.iter().any(|s| s == stage) {
                entry.completed.push(stage.to_owned());
            }
            entry.completed.clone()
        })?;
        // Completed (or evicted) by a concurrent request meanwhile: start over.
        let Some(completed) = recorded else {
            return Err(body(&self.start(now, owner)?, &[], None));
        };
        if flow_done(&completed) {
            return match self.store.take(&session)? {
                Some(done) => Ok(done.data),
                None => Err(body(&self.start(now, owner)?, &[], None)),
            };
        }
        Err(body(&session, &completed, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A check on each store: in memory, and in a database as a group of processes keeps them.
    fn on_both(check: impl Fn(&Uia)) {
        check(&Uia::default());
        let (_dir, db) = crate::storage::test_db(store::MAPS);
        check(&Uia::shared(db));
    }

    #[test]
    fn dummy_flow_completes_with_session() {
        on_both(|uia| {
            let flows = vec![vec!["m.login.dummy"]];
            let err = uia
                .check(None, None, &flows, json!({}), |_, _| Ok(true))
                .unwrap_err();
            let session = err.to_json()["session"].as_str().unwrap().to_owned();
            uia.check(
                None,
                Some(&json!({"type": "m.login.dummy", "session": session})),
                &flows,
                json!({}),
                |_, _| Ok(true),
            )
            .unwrap();
        });
    }

    #[test]
    fn wrong_password_keeps_session_and_says_forbidden() {
        on_both(|uia| {
            let flows = vec![vec!["m.login.password"]];
            let first = uia
                .check(None, None, &flows, json!({}), |_, _| Ok(true))
                .unwrap_err()
                .to_json();
            let session = first["session"].as_str().unwrap();
            let auth = json!({"type": "m.login.password", "session": session, "password": "x"});
            let err = uia
                .check(None, Some(&auth), &flows, json!({}), |_, _| Ok(false))
                .unwrap_err();
            let body = err.to_json();
            assert_eq!(body["errcode"], "M_FORBIDDEN");
            assert_eq!(body["session"], session);
            assert_eq!(err.status.as_u16(), 401);
        });
    }

    #[test]
    fn sessions_are_bounded_and_the_oldest_goes() {
        on_both(|uia| {
            let flows = vec![vec!["m.login.dummy"]];
            let first = uia
                .check(None, None, &flows, json!({}), |_, _| Ok(true))
                .unwrap_err()
                .to_json();
            let first = first["session"].as_str().unwrap().to_owned();
            // Sessions are aged by millisecond: the first is made strictly the oldest (without
            // the pause, others made in its millisecond could go before it).
            std::thread::sleep(std::time::Duration::from_millis(2));
            for _ in 0..MAX_SESSIONS + 50 {
                let _ = uia.check(None, None, &flows, json!({}), |_, _| Ok(true));
            }
            assert_eq!(uia.session_count().unwrap(), MAX_SESSIONS);
            // The first session was evicted: continuing it starts over with a new one.
            let err = uia
                .check(
                    None,
                    Some(&json!({"type": "m.login.dummy", "session": first})),
                    &flows,
                    json!({}),
                    |_, _| Ok(true),
                )
                .unwrap_err()
                .to_json();
            assert_ne!(err["session"], first);
        });
    }

    #[test]
    fn sessions_expire() {
        on_both(|uia| {
            let flows = vec![vec!["m.login.dummy"]];
            let old = now_ms() - SESSION_LIFETIME.as_millis() as u64 - 1_000;
            let session = Session {
                completed: Vec::new(),
                created: old,
                owner: None,
                data: serde_json::Map::new(),
            };
            uia.store.insert("old", session, old).unwrap();
            let err = uia
                .check(
                    None,
                    Some(&json!({"type": "m.login.dummy", "session": "old"})),
                    &flows,
                    json!({}),
                    |_, _| Ok(true),
                )
                .unwrap_err()
                .to_json();
            assert_ne!(err["session"], "old");
            assert!(uia.store.get("old").unwrap().is_none());
        });
    }

    #[test]
    fn a_session_belongs_to_its_user_and_an_outside_stage_completes_it() {
        on_both(|uia| {
            let alice: OwnedUserId = "@alice:example.org".try_into().unwrap();
            let mallory: OwnedUserId = "@mallory:example.org".try_into().unwrap();
            let flows = vec![vec!["m.login.sso"]];
            let session = uia
                .check(Some(&alice), None, &flows, json!({}), |_, _| Ok(false))
                .unwrap_err()
                .to_json()["session"]
                .as_str()
                .unwrap()
                .to_owned();
            assert_eq!(uia.owner(&session).unwrap().as_ref(), Some(&alice));
            // Another user's request cannot continue alice's session: it gets a new one.
            let other = uia
                .check(
                    Some(&mallory),
                    Some(&json!({ "session": session })),
                    &flows,
                    json!({}),
                    |_, _| Ok(true),
                )
                .unwrap_err()
                .to_json();
            assert_ne!(other["session"], session.as_str());
            // Nor can mallory complete alice's stage; alice can, and her retry then passes.
            assert!(
                !uia.complete_stage(&session, "m.login.sso", &mallory)
                    .unwrap()
            );
            let pending = uia
                .check(
                    Some(&alice),
                    Some(&json!({ "session": session })),
                    &flows,
                    json!({}),
                    |_, _| Ok(false),
                )
                .unwrap_err()
                .to_json();
            assert_eq!(pending["completed"], json!([]));
            assert!(uia.complete_stage(&session, "m.login.sso", &alice).unwrap());
            uia.check(
                Some(&alice),
                Some(&json!({ "session": session })),
                &flows,
                json!({}),
                |_, _| Ok(false),
            )
            .unwrap();
            assert!(
                uia.owner(&session).unwrap().is_none(),
                "a completed session is gone"
            );
            assert!(
                !uia.complete_stage("never-issued", "m.login.sso", &alice)
                    .unwrap()
            );
        });
    }
}
