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

const SESSION_LIFETIME: Duration = Duration::from_secs(30 * 60);

#[derive(Default)]
pub struct Uia {
    sessions: Mutex<HashMap<String, (Vec<String>, Instant)>>,
}

impl Uia {
    /// Checks the `auth` object of a request against `flows`. `verify(stage, auth)` checks one
    /// stage's credentials. Returns `Ok(())` once a flow is complete, else the 401 answer.
    pub fn check(
        &self,
        auth: Option<&Value>,
        flows: &[Vec<&'static str>],
        params: Value,
        verify: impl FnOnce(&str, &Value) -> Result<bool>,
    ) -> Result<()> {
        let mut sessions = self.sessions.lock().unwrap();
        let now = Instant::now();
        sessions.retain(|_, (_, created)| now.duration_since(*created) < SESSION_LIFETIME);

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

        let Some(auth) = auth.filter(|a| a.get("type").is_some() || a.get("session").is_some()) else {
            let session = random_string(24);
            sessions.insert(session.clone(), (Vec::new(), now));
            return Err(body(&session, &[], None));
        };
        // Every stage after the first request names the session it continues.
        let Some(session) = auth.get("session").and_then(Value::as_str).map(str::to_owned) else {
            let session = random_string(24);
            sessions.insert(session.clone(), (Vec::new(), now));
            return Err(body(&session, &[], None));
        };
        // A session this server did not hand out (or that expired) starts over.
        let Some((completed, _)) = sessions.get(&session).cloned() else {
            let session = random_string(24);
            sessions.insert(session.clone(), (Vec::new(), now));
            return Err(body(&session, &[], None));
        };
        let Some(stage) = auth.get("type").and_then(Value::as_str) else {
            return Err(body(&session, &completed, None));
        };
        if !flows.iter().any(|f| f.contains(&stage)) {
            return Err(body(&session, &completed, Some(("M_UNRECOGNIZED", "Unknown authentication stage"))));
        }
        match verify(stage, auth) {
            Ok(true) => {}
            Ok(false) => return Err(body(&session, &completed, Some(("M_FORBIDDEN", "Invalid credentials")))),
            Err(e) if e.status.as_u16() == 401 => {
                return Err(body(&session, &completed, Some((e.errcode, &e.message))));
            }
            Err(e) => return Err(e),
        }
        let entry = sessions.get_mut(&session).expect("inserted above");
        if !entry.0.iter().any(|s| s == stage) {
            entry.0.push(stage.to_owned());
        }
        let completed = entry.0.clone();
        if flows.iter().any(|f| f.iter().all(|s| completed.iter().any(|c| c == s))) {
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
        let err = uia.check(None, &flows, json!({}), |_, _| Ok(true)).unwrap_err();
        let session = err.to_json()["session"].as_str().unwrap().to_owned();
        uia.check(Some(&json!({"type": "m.login.dummy", "session": session})), &flows, json!({}), |_, _| Ok(true))
            .unwrap();
    }

    #[test]
    fn wrong_password_keeps_session_and_says_forbidden() {
        let uia = Uia::default();
        let flows = vec![vec!["m.login.password"]];
        let first = uia.check(None, &flows, json!({}), |_, _| Ok(true)).unwrap_err().to_json();
        let session = first["session"].as_str().unwrap();
        let auth = json!({"type": "m.login.password", "session": session, "password": "x"});
        let err = uia.check(Some(&auth), &flows, json!({}), |_, _| Ok(false)).unwrap_err();
        let body = err.to_json();
        assert_eq!(body["errcode"], "M_FORBIDDEN");
        assert_eq!(body["session"], session);
        assert_eq!(err.status.as_u16(), 401);
    }
}
