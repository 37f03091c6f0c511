//! `required_state` of a room: which state events a client asked for, as `(type, state_key)`
//! pairs where `*` is any type or key, `$ME` the user's own id, and `m.room.member`/`$LAZY` the
//! members who sent the events of the timeline in the answer.

use std::collections::BTreeSet;

use ruma::{UserId, events::StateEventType};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequiredState {
    /// Exact or wildcard `(type, key)` pairs; `None` is `*`. `$ME` is already the user's id.
    pairs: BTreeSet<(Option<String>, Option<String>)>,
    /// `m.room.member` with `$LAZY`.
    pub lazy_members: bool,
}

impl RequiredState {
    pub fn new(user: &UserId, pairs: &[(StateEventType, String)]) -> Self {
        let mut out = Self::default();
        out.extend(user, pairs);
        out
    }

    /// Adds the pairs of another list or subscription of the same room (the union is asked for).
    pub fn extend(&mut self, user: &UserId, pairs: &[(StateEventType, String)]) {
        for (kind, key) in pairs {
            let kind = kind.to_string();
            if kind == "m.room.member" && key == "$LAZY" {
                self.lazy_members = true;
                continue;
            }
            let key = match key.as_str() {
                "*" => None,
                "$ME" => Some(user.to_string()),
                other => Some(other.to_owned()),
            };
            let kind = (kind != "*").then_some(kind);
            self.pairs.insert((kind, key));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty() && !self.lazy_members
    }

    /// Whether the state event `(kind, key)` is wanted; `senders` are the timeline's senders (for
    /// `$LAZY`).
    pub fn wants(&self, kind: &str, key: &str, senders: &BTreeSet<&str>) -> bool {
        if self.lazy_members && kind == "m.room.member" && senders.contains(key) {
            return true;
        }
        self.pairs.iter().any(|(k, s)| {
            // `["*", "*"]` is every state event; `["*", key]` is not allowed by the MSC but harmless.
            k.as_deref().is_none_or(|k| k == kind) && s.as_deref().is_none_or(|s| s == key)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pairs: &[(&str, &str)]) -> RequiredState {
        let user: &UserId = "@me:x".try_into().unwrap();
        let pairs: Vec<_> = pairs
            .iter()
            .map(|(k, s)| (StateEventType::from(*k), s.to_string()))
            .collect();
        RequiredState::new(user, &pairs)
    }

    #[test]
    fn exact_pairs_and_wildcards() {
        let none = BTreeSet::new();
        let r = req(&[("m.room.name", ""), ("m.room.member", "*")]);
        assert!(r.wants("m.room.name", "", &none));
        assert!(!r.wants("m.room.topic", "", &none));
        assert!(r.wants("m.room.member", "@anyone:x", &none));
        let all = req(&[("*", "*")]);
        assert!(all.wants("m.room.topic", "", &none) && all.wants("m.room.member", "@b:x", &none));
        assert!(req(&[]).is_empty());
        assert!(!req(&[]).wants("m.room.name", "", &none));
    }

    #[test]
    fn me_is_the_users_own_id() {
        let none = BTreeSet::new();
        let r = req(&[("m.room.member", "$ME")]);
        assert!(r.wants("m.room.member", "@me:x", &none));
        assert!(!r.wants("m.room.member", "@other:x", &none));
    }

    #[test]
    fn lazy_members_are_the_timeline_senders() {
        let r = req(&[("m.room.member", "$LAZY")]);
        assert!(r.lazy_members);
        let senders = BTreeSet::from(["@b:x"]);
        assert!(r.wants("m.room.member", "@b:x", &senders));
        assert!(!r.wants("m.room.member", "@c:x", &senders));
        assert!(!r.wants("m.room.name", "", &senders));
    }
}
