//! User-interactive authentication sessions.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

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
    /// session id → (completed stages, created).
    sessions: Mutex<HashMap<String, (Vec<String>, Instant)>>,
}

impl Uia {
    /// A new session, making room by forgetting expired sessions, then the oldest.
    fn start(&self, now: Instant) -> String {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, (_, created)| now.duration_since(*created) < SESSION_LIFETIME);
        }
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, (_, created))| *created)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        let session = random_string(24);
        sessions.insert(session.clone(), (Vec::new(), now));
        session
    }

    /// The stages a live session completed (None: unknown or expired).
    fn completed(&self, session: &str, now: Instant) -> Option<Vec<String>> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        match sessions.get(session) {
            Some((_, created)) if now.duration_since(*created) >= SESSION_LIFETIME => {
                sessions.remove(session);
                None
            }
            Some((completed, _)) => Some(completed.clone()),
            None => None,
        }
    }

    /// How many sessions are kept.
    pub fn session_count(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Checks the `auth` object of a request against `flows`. `verify(stage, auth)` checks one
    /// stage's credentials (it runs without the sessions' lock). Returns `Ok(())` once a flow is
    /// complete, else the 401 answer.
    pub fn check(
        &self,
        auth: Option<&Value>,
        flows: &[Vec<&'static str>],
        params: Value,
        verify: impl FnOnce(&str, &Value) -> Result<bool>,
    ) -> Result<()> {
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
            return Err(body(&self.start(now), &[], None));
        };
        // Every stage after the first request names the session it continues.
        let Some(session) = auth
            .get("session")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return Err(body(&self.start(now), &[], None));
        };
        // A session this server did not hand out (or that expired) starts over.
        let Some(completed) = self.completed(&session, now) else {
            return Err(body(&self.start(now), &[], None));
        };
        let Some(stage) = auth.get("type").and_then(Value::as_str) else {
            return Err(body(&session, &completed, None));
        };
        if !flows.iter().any(|f| f.contains(&stage)) {
            return Err(body(
                &session,
                &completed,
                Some(("M_UNRECOGNIZED", "Unknown authentication stage")),
            ));
        }
        match verify(stage, auth) {
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
            return Err(body(&self.start(now), &[], None));
        };
        if !entry.0.iter().any(|s| s == stage) {
            entry.0.push(stage.to_owned());
        }
        let completed = entry.0.clone();
        if flows
            .iter()
            .any(|f| f.iter().all(|s| completed.iter().any(|c| c == s)))
        {
            sessions.remove(&session);
            return Ok(());
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
            .check(None, &flows, json!({}), |_, _| Ok(true))
            .unwrap_err();
        let session = err.to_json()["session"].as_str().unwrap().to_owned();
        uia.check(
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
            .check(None, &flows, json!({}), |_, _| Ok(true))
            .unwrap_err()
            .to_json();
        let session = first["session"].as_str().unwrap();
        let auth = json!({"type": "m.login.password", "session": session, "password": "x"});
        let err = uia
            .check(Some(&auth), &flows, json!({}), |_, _| Ok(false))
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
            .check(None, &flows, json!({}), |_, _| Ok(true))
            .unwrap_err()
            .to_json();
        let first = first["session"].as_str().unwrap().to_owned();
        for _ in 0..MAX_SESSIONS + 50 {
            let _ = uia.check(None, &flows, json!({}), |_, _| Ok(true));
        }
        assert_eq!(uia.session_count(), MAX_SESSIONS);
        // The first session was evicted: continuing it starts over with a new one.
        let err = uia
            .check(
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
        uia.sessions
            .lock()
            .unwrap()
            .insert("old".into(), (Vec::new(), old));
        let err = uia
            .check(
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
}
