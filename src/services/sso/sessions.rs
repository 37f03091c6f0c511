//! Which devices each provider session signed in, so that a back-channel logout ends them:
//! CF `oidc_sessions`, key `idp ‖ subject ‖ sid ‖ user ‖ device` (the key says it all; the value
//! is empty). A session without a `sid` is stored with an empty one.

use ruma::{OwnedDeviceId, OwnedUserId, UserId};

use crate::{
    error::Result,
    storage::{
        Batch, Db, Map,
        keys::{Key, KeyReader},
    },
};

pub const OIDC_SESSIONS: Map = Map("oidc_sessions");

/// The provider session a login token came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProviderSession {
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

pub struct OidcSessions {
    db: Db,
}

/// One signed-in device of a provider session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub key: Vec<u8>,
    pub user: OwnedUserId,
    pub device: OwnedDeviceId,
}

impl OidcSessions {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    fn key(idp: &str, session: &ProviderSession, user: &UserId, device: &str) -> Vec<u8> {
        Key::new()
            .str(idp)
            .str(&session.subject)
            .str(session.sid.as_deref().unwrap_or(""))
            .str(user.as_str())
            .str(device)
            .build()
    }

    pub fn record(
        &self,
        idp: &str,
        session: &ProviderSession,
        user: &UserId,
        device: &str,
    ) -> Result<()> {
        self.db.put(
            OIDC_SESSIONS,
            Self::key(idp, session, user, device),
            Vec::new(),
        )?;
        Ok(())
    }

    /// The devices of `idp` that `subject` (all of them) or `sid` (that session's) signed in.
    /// A token with a `sid` but no subject is matched by `sid` over the provider's sessions.
    pub fn matching(
        &self,
        idp: &str,
        subject: Option<&str>,
        sid: Option<&str>,
    ) -> Result<Vec<SignedIn>> {
        let mut prefix = Key::new().str(idp);
        if let Some(subject) = subject {
            prefix = prefix.str(subject);
        }
        let prefix = prefix.build();
        let mut found = Vec::new();
        for entry in self.db.scan_prefix(OIDC_SESSIONS, &prefix) {
            let (key, _) = entry?;
            let mut reader = KeyReader::new(&key);
            let (_idp, _subject) = (reader.str(), reader.str());
            let (Some(stored_sid), Some(user), Some(device)) =
                (reader.str(), reader.str(), reader.str())
            else {
                continue;
            };
            if sid.is_some_and(|sid| sid != stored_sid) {
                continue;
            }
            let (Ok(user), Ok(device)) =
                (OwnedUserId::try_from(user), OwnedDeviceId::try_from(device))
            else {
                continue;
            };
            found.push(SignedIn {
                key: key.to_vec(),
                user,
                device,
            });
        }
        Ok(found)
    }

    /// Forgets ended sessions (in one batch).
    pub fn forget(&self, ended: &[SignedIn]) -> Result<()> {
        let mut batch = Batch::new();
        for e in ended {
            batch.delete(OIDC_SESSIONS, e.key.clone());
        }
        self.db.write(batch)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_found_by_subject_by_sid_or_both() {
        let (_dir, db) = crate::storage::test_db(&[OIDC_SESSIONS]);
        let sessions = OidcSessions::new(db);
        let alice: OwnedUserId = "@alice:example.org".try_into().unwrap();
        let s1 = ProviderSession {
            subject: "a".into(),
            sid: Some("s1".into()),
        };
        let s2 = ProviderSession {
            subject: "a".into(),
            sid: Some("s2".into()),
        };
        sessions.record("idp", &s1, &alice, "PHONE").unwrap();
        sessions.record("idp", &s2, &alice, "LAPTOP").unwrap();
        sessions.record("other", &s1, &alice, "ELSEWHERE").unwrap();
        let devices = |found: Vec<SignedIn>| -> Vec<String> {
            found.into_iter().map(|f| f.device.to_string()).collect()
        };
        assert_eq!(
            devices(sessions.matching("idp", Some("a"), None).unwrap()),
            ["PHONE", "LAPTOP"]
        );
        assert_eq!(
            devices(sessions.matching("idp", Some("a"), Some("s2")).unwrap()),
            ["LAPTOP"]
        );
        assert_eq!(
            devices(sessions.matching("idp", None, Some("s1")).unwrap()),
            ["PHONE"]
        );
        assert!(
            sessions
                .matching("idp", Some("b"), None)
                .unwrap()
                .is_empty()
        );
        let ended = sessions.matching("idp", Some("a"), Some("s1")).unwrap();
        sessions.forget(&ended).unwrap();
        assert_eq!(
            devices(sessions.matching("idp", Some("a"), None).unwrap()),
            ["LAPTOP"]
        );
    }
}
