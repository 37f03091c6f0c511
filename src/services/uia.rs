//! User-interactive authentication sessions.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use ruma::{OwnedUserId, UserId};
use serde_json::{Value, json};

use crate::{
    error::{Error, Result},
    util::random_string,
};

/// A session not completed within this time is forgotten.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Sessions kept at once (anonymous `/register` calls create them): beyond, the oldest goes.
pub const MAX_SESSIONS: usize = 10_000;

#[derive(Default)]
pub struct Uia {
    sessions: Mutex<HashMap<String, Session>>,
}

struct Session {
    completed: Vec<String>,
    created: Instant,
    /// The signed-in user the session confirms (None: registration). A stage completed outside
    /// the request (single sign-on's fallback page) must be by this user.
    owner: Option<OwnedUserId>,
    /// What stages found out (the e-mail address a registration validated), handed to the
    /// request that completes the session.
    data: serde_json::Map<String, Value>,
}

impl Uia {
    /// A new session, making room by forgetting expired sessions, then the oldest.
    fn start(&self, now: Instant, owner: Option<&UserId>) -> String {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, s| now.duration_since(s.created) < SESSION_LIFETIME);
        }
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        let session = random_string(24);
        sessions.insert(
            session.clone(),
            Session {
                completed: Vec::new(),
                created: now,
                owner: owner.map(ToOwned::to_owned),
                data: serde_json::Map::new(),
            },
        );
        session
    }

    /// The stages a live session of `owner` completed (None: unknown, expired or another's).
    fn completed(
        &self,
        session: &str,
        owner: Option<&UserId>,
        now: Instant,
    ) -> Option<Vec<String>> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        match sessions.get(session) {
            Some(s) if now.duration_since(s.created) >= SESSION_LIFETIME => {
                sessions.remove(session);
                None
            }
            Some(s) if s.owner.as_deref() == owner => Some(s.completed.clone()),
            _ => None,
        }
    }

    /// The user a live session confirms.
    pub fn owner(&self, session: &str) -> Option<OwnedUserId> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .get(session)
            .filter(|s| s.created.elapsed() < SESSION_LIFETIME)
            .and_then(|s| s.owner.clone())
    }

    /// Records `stage` as completed by `user` outside the request (the single sign-on fallback
    /// page): only in a live session that confirms `user`. Answers whether it was recorded.
    pub fn complete_stage(&self, session: &str, stage: &str, user: &UserId) -> bool {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        match sessions.get_mut(session) {
            Some(s)
                if s.created.elapsed() < SESSION_LIFETIME && s.owner.as_deref() == Some(user) =>
            {
                if !s.completed.iter().any(|c| c == stage) {
                    s.completed.push(stage.to_owned());
                }
                true
            }
            _ => false,
        }
    }

    /// How many sessions are kept.
    pub fn session_count(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Keeps `value` under `key` in a live session (a stage's finding, e.g. a validated address).
    pub fn remember(&self, session: &str, key: &str, value: Value) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = sessions.get_mut(session) {
            s.data.insert(key.to_owned(), value);
        }
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
        let now = Instant::now();
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
            return Err(body(&self.start(now, owner), &[], None));
        };
        // Every stage after the first request names the session it continues.
        let Some(session) = auth
            .get("session")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return Err(body(&self.start(now, owner), &[], None));
        };
        // A session this server did not hand out (or that expired) starts over.
        let Some(completed) = self.completed(&session, owner, now) else {
            return Err(body(&self.start(now, owner), &[], None));
        };
        let flow_done = |completed: &[String]| {
            flows
                .iter()
                .any(|f| f.iter().all(|s| completed.iter().any(|c| c == s)))
        };
        let Some(stage) = auth.get("type").and_then(Value::as_str) else {
            // The fallback page completed the stages: the client retries with the session only.
            if flow_done(&completed) {
                let done = self
                    .sessions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&session);
                return Ok(done.map(|s| s.data).unwrap_or_default());
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
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        // Completed (or evicted) by a concurrent request meanwhile: start over.
        let Some(entry) = sessions.get_mut(&session) else {
            drop(sessions);
            return Err(body(&self.start(now, owner), &[], None));
        };
        if !entry.completed.iter().any(|s| s == stage) {
            entry.completed.push(stage.to_owned());
        }
        let completed = entry.completed.clone();
        if flow_done(&completed) {
            let done = sessions.remove(&session);
            return Ok(done.map(|s| s.data).unwrap_or_default());
        }
        Err(body(&session, &completed, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_flow_completes_with_session() {
        let uia = Uia::default();
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
    }

    #[test]
    fn wrong_password_keeps_session_and_says_forbidden() {
        let uia = Uia::default();
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
    }

    #[test]
    fn sessions_are_bounded_and_the_oldest_goes() {
        let uia = Uia::default();
        let flows = vec![vec!["m.login.dummy"]];
        let first = uia
            .check(None, None, &flows, json!({}), |_, _| Ok(true))
            .unwrap_err()
            .to_json();
        let first = first["session"].as_str().unwrap().to_owned();
        for _ in 0..MAX_SESSIONS + 50 {
            let _ = uia.check(None, None, &flows, json!({}), |_, _| Ok(true));
        }
        assert_eq!(uia.session_count(), MAX_SESSIONS);
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
    }

    #[test]
    fn sessions_expire() {
        let uia = Uia::default();
        let flows = vec![vec!["m.login.dummy"]];
        let old = Instant::now()
            .checked_sub(SESSION_LIFETIME + Duration::from_secs(1))
            .unwrap();
        uia.sessions.lock().unwrap().insert(
            "old".into(),
            Session {
                completed: Vec::new(),
                created: old,
                owner: None,
                data: serde_json::Map::new(),
            },
        );
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
        assert!(!uia.sessions.lock().unwrap().contains_key("old"));
    }

    #[test]
    fn a_session_belongs_to_its_user_and_an_outside_stage_completes_it() {
        let uia = Uia::default();
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
        assert_eq!(uia.owner(&session).as_ref(), Some(&alice));
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
        assert!(!uia.complete_stage(&session, "m.login.sso", &mallory));
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
        assert!(uia.complete_stage(&session, "m.login.sso", &alice));
        uia.check(
            Some(&alice),
            Some(&json!({ "session": session })),
            &flows,
            json!({}),
            |_, _| Ok(false),
        )
        .unwrap();
        assert!(uia.owner(&session).is_none(), "a completed session is gone");
        assert!(!uia.complete_stage("never-issued", "m.login.sso", &alice));
    }
}
