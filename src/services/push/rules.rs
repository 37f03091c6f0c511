//! Each user's push rules: ruma's server-default ruleset, changed through the push rules API and
//! stored as the user's `m.push_rules` global account data (`{"global": ruleset}`), so that clients
//! also see them in /sync.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use http::StatusCode;
use ruma::{
    OwnedUserId, UserId,
    api::client::push::PushRule,
    push::{Action, InsertPushRuleError, NewPushRule, RemovePushRuleError, RuleKind, Ruleset},
};
use serde_json::{Value, json};

use crate::{
    error::{Error, Result},
    services::Services,
};

pub const ACCOUNT_DATA_TYPE: &str = "m.push_rules";

/// The stored ruleset, with the current server-default rules merged in (their `enabled` and
/// `actions` as the user set them), or the server defaults for a user who never changed a rule.
pub fn parse_stored(user: &UserId, content: Option<&Value>) -> Ruleset {
    let stored = content
        .and_then(|c| c.get("global"))
        .and_then(|g| serde_json::from_value::<Ruleset>(g.clone()).ok());
    match stored {
        Some(mut ruleset) => {
            ruleset.update_with_server_default(Ruleset::server_default(user));
            ruleset
        }
        None => Ruleset::server_default(user),
    }
}

/// The account data content of a ruleset.
pub fn content_of(ruleset: &Ruleset) -> Value {
    json!({ "global": ruleset })
}

/// What is known of a user's rules.
#[derive(Clone)]
pub enum Rules {
    /// The server defaults: nothing stored, or stored and the same as them.
    Default,
    Custom(Arc<Ruleset>),
}

/// The users whose rules are the server defaults (most users: a short entry each, so that a
/// room of thousands evaluates without reading each one's account data), and the others' rules.
#[derive(Default)]
pub struct RulesCache {
    defaults: HashSet<OwnedUserId>,
    custom: HashMap<OwnedUserId, Arc<Ruleset>>,
}

const MAX_DEFAULT_USERS: usize = 200_000;
const MAX_CUSTOM: usize = 4096;

impl RulesCache {
    pub fn get(&self, user: &UserId) -> Option<Rules> {
        if self.defaults.contains(user) {
            return Some(Rules::Default);
        }
        self.custom.get(user).cloned().map(Rules::Custom)
    }

    pub fn put(&mut self, user: &UserId, rules: Rules) {
        self.remove(user);
        match rules {
            Rules::Default => {
                if self.defaults.len() >= MAX_DEFAULT_USERS {
                    self.defaults.clear();
                }
                self.defaults.insert(user.to_owned());
            }
            Rules::Custom(ruleset) => {
                if self.custom.len() >= MAX_CUSTOM {
                    self.custom.clear();
                }
                self.custom.insert(user.to_owned(), ruleset);
            }
        }
    }

    pub fn remove(&mut self, user: &UserId) {
        self.defaults.remove(user);
        self.custom.remove(user);
    }
}

/// `ruleset` as [`Rules`]: `Default` when it is the user's server defaults.
fn classify(user: &UserId, ruleset: Ruleset) -> Rules {
    let default = Ruleset::server_default(user);
    if serde_json::to_value(&ruleset).ok() == serde_json::to_value(&default).ok() {
        Rules::Default
    } else {
        Rules::Custom(Arc::new(ruleset))
    }
}

/// What is known of the user's rules (cached until the user changes them).
pub fn rules_of(s: &Services, user: &UserId) -> Result<Rules> {
    if let Some(cached) = s.push.rules_cache.lock().unwrap().get(user) {
        return Ok(cached);
    }
    let content = s.account_data.get(user, None, ACCOUNT_DATA_TYPE)?;
    let rules = match content {
        None => Rules::Default,
        Some(content) => classify(user, parse_stored(user, Some(&content))),
    };
    s.push.rules_cache.lock().unwrap().put(user, rules.clone());
    Ok(rules)
}

/// The user's ruleset.
pub fn ruleset(s: &Services, user: &UserId) -> Result<Arc<Ruleset>> {
    Ok(match rules_of(s, user)? {
        Rules::Default => Arc::new(Ruleset::server_default(user)),
        Rules::Custom(ruleset) => ruleset,
    })
}

/// Whether the server defaults depend on the user only through their full ID (no display name,
/// localpart or server name of their own): then two users whom an event does not name get the
/// same actions from them (`evaluate`). Checked on two users' defaults, so that a change of
/// ruma's predefined rules cannot make the sharing wrong.
pub fn defaults_depend_only_on_the_id() -> bool {
    let one = ruma::user_id!("@neutralitycheckone:one.example");
    let two = ruma::user_id!("@neutralitychecktwo:two.example");
    let neutral = |user: &UserId| {
        serde_json::to_string(&Ruleset::server_default(user))
            .map(|json| json.replace(user.as_str(), "@USER"))
            .ok()
    };
    let (a, b) = (neutral(one), neutral(two));
    a.is_some()
        && a == b
        && a.as_deref().is_some_and(|json| {
            !json.contains("contains_display_name")
                && !json.contains("neutralitycheck")
                && !json.contains("example")
        })
}

/// Applies `change` to the user's ruleset and stores the result (one account data write, which
/// /sync shows). Nothing is written when `change` fails.
pub fn update<R>(
    s: &Services,
    user: &UserId,
    change: impl FnOnce(&mut Ruleset) -> Result<R>,
) -> Result<R> {
    let _guard = s.push.rules_write.lock().unwrap_or_else(|e| e.into_inner());
    // In a group, a change made through another process a moment ago is applied here first
    // (its invalidation), so this change starts from it.
    s.globals.catch_up()?;
    let mut ruleset = (*ruleset(s, user)?).clone();
    let result = change(&mut ruleset)?;
    s.account_data.set_invalidating(
        &s.globals,
        user,
        None,
        ACCOUNT_DATA_TYPE,
        &content_of(&ruleset),
        Some(crate::services::cluster::Invalidation::PushRules {
            user: user.to_owned(),
        }),
    )?;
    s.push
        .rules_cache
        .lock()
        .unwrap()
        .put(user, classify(user, ruleset));
    Ok(result)
}

/// The error of an unknown rule.
pub fn not_found() -> Error {
    Error::not_found("The push rule was not found.")
}

/// One rule of the user's rules (kind checked first; unknown: 404 `M_NOT_FOUND`).
pub fn rule(s: &Services, user: &UserId, kind: &RuleKind, rule_id: &str) -> Result<PushRule> {
    check_kind(kind)?;
    let ruleset = ruleset(s, user)?;
    ruleset
        .get(kind.clone(), rule_id)
        .map(PushRule::from)
        .ok_or_else(not_found)
}

/// Only the five kinds of the spec are known.
pub fn check_kind(kind: &RuleKind) -> Result<()> {
    match kind {
        RuleKind::Override
        | RuleKind::Underride
        | RuleKind::Sender
        | RuleKind::Room
        | RuleKind::Content => Ok(()),
        _ => Err(Error::invalid_param(format!(
            "Unknown push rule kind {kind}"
        ))),
    }
}

/// Inserts or replaces a user rule, placed by `before`/`after`.
pub fn insert(
    ruleset: &mut Ruleset,
    rule: NewPushRule,
    before: Option<&str>,
    after: Option<&str>,
) -> Result<()> {
    // A rule placed relative to itself is not placed at all.
    let id = rule.rule_id().to_owned();
    let kind = rule.kind();
    let before = before.filter(|b| *b != id);
    let after = after.filter(|a| *a != id);
    let mut changed = ruleset.clone();
    // A rule that moves is taken out first (ruma's move lands one place too far when a rule moves
    // down), keeping whether it was enabled.
    let enabled = changed
        .get(kind.clone(), &id)
        .filter(|r| !r.is_server_default())
        .map(|r| r.enabled());
    if enabled.is_some() && (before.is_some() || after.is_some()) {
        let _ = changed.remove(kind.clone(), &id);
    }
    changed.insert(rule, after, before).map_err(|e| match e {
        InsertPushRuleError::ServerDefaultRuleId => Error::invalid_param(
            "Rule ids starting with a dot are reserved for server-default rules",
        ),
        InsertPushRuleError::InvalidRuleId => Error::invalid_param("Invalid rule id"),
        InsertPushRuleError::RelativeToServerDefaultRule => Error::new(
            StatusCode::BAD_REQUEST,
            "M_UNKNOWN",
            "A rule cannot be placed relative to a server-default rule",
        ),
        InsertPushRuleError::UnknownRuleId => Error::new(
            StatusCode::BAD_REQUEST,
            "M_UNKNOWN",
            format!(
                "before/after rule not found: {}",
                before.or(after).unwrap_or_default()
            ),
        ),
        InsertPushRuleError::BeforeHigherThanAfter => Error::new(
            StatusCode::BAD_REQUEST,
            "M_UNKNOWN",
            "before has a higher priority than after",
        ),
        other => Error::invalid_param(other.to_string()),
    })?;
    if let Some(enabled) = enabled {
        let _ = changed.set_enabled(kind, &id, enabled);
    }
    *ruleset = changed;
    Ok(())
}

pub fn remove(ruleset: &mut Ruleset, kind: RuleKind, rule_id: &str) -> Result<()> {
    ruleset.remove(kind, rule_id).map_err(|e| match e {
        RemovePushRuleError::ServerDefault => {
            Error::invalid_param("Server-default rules cannot be deleted")
        }
        RemovePushRuleError::NotFound => not_found(),
        other => Error::invalid_param(other.to_string()),
    })
}

pub fn set_enabled(
    ruleset: &mut Ruleset,
    kind: RuleKind,
    rule_id: &str,
    enabled: bool,
) -> Result<()> {
    ruleset
        .set_enabled(kind, rule_id, enabled)
        .map_err(|_| not_found())
}

pub fn set_actions(
    ruleset: &mut Ruleset,
    kind: RuleKind,
    rule_id: &str,
    actions: Vec<Action>,
) -> Result<()> {
    ruleset
        .set_actions(kind, rule_id, actions)
        .map_err(|_| not_found())
}

#[cfg(test)]
mod tests {
    use ruma::{
        owned_room_id, owned_user_id,
        push::{NewConditionalPushRule, NewSimplePushRule, PushCondition},
    };

    use super::*;

    /// Sharing one evaluation of the defaults among the users an event does not name is on: a
    /// ruma upgrade whose predefined rules read a display name or a localpart turns it off, and
    /// this test tells.
    #[test]
    fn server_defaults_depend_only_on_the_user_id() {
        assert!(defaults_depend_only_on_the_id());
    }

    #[test]
    fn a_stored_ruleset_equal_to_the_defaults_is_default() {
        let user = ruma::user_id!("@anna:one.example");
        assert!(matches!(
            classify(user, Ruleset::server_default(user)),
            Rules::Default
        ));
        let mut changed = Ruleset::server_default(user);
        changed
            .set_enabled(RuleKind::Underride, ".m.rule.message", false)
            .unwrap();
        assert!(matches!(classify(user, changed), Rules::Custom(_)));
    }

    fn ids(ruleset: &Ruleset, kind: RuleKind) -> Vec<String> {
        ruleset
            .iter()
            .filter(|r| match kind {
                RuleKind::Override => matches!(r, ruma::push::AnyPushRuleRef::Override(_)),
                RuleKind::Room => matches!(r, ruma::push::AnyPushRuleRef::Room(_)),
                _ => false,
            })
            .map(|r| r.rule_id().to_owned())
            .collect()
    }

    fn override_rule(id: &str) -> NewPushRule {
        NewPushRule::Override(NewConditionalPushRule::new(
            id.into(),
            vec![
                serde_json::from_value::<PushCondition>(
                    json!({ "kind": "event_match", "key": "type", "pattern": "m.x" }),
                )
                .unwrap(),
            ],
            vec![],
        ))
    }

    #[test]
    fn new_override_rules_go_after_master_and_move_with_before_and_after() {
        let user = owned_user_id!("@a:x");
        let mut rs = Ruleset::server_default(&user);
        insert(&mut rs, override_rule("one"), None, None).unwrap();
        insert(&mut rs, override_rule("two"), None, None).unwrap();
        let order = ids(&rs, RuleKind::Override);
        assert_eq!(&order[..3], [".m.rule.master", "two", "one"]);
        insert(&mut rs, override_rule("two"), None, Some("one")).unwrap();
        assert_eq!(
            &ids(&rs, RuleKind::Override)[..3],
            [".m.rule.master", "one", "two"]
        );
        insert(&mut rs, override_rule("three"), Some("one"), None).unwrap();
        assert_eq!(
            &ids(&rs, RuleKind::Override)[..4],
            [".m.rule.master", "three", "one", "two"]
        );
    }

    #[test]
    fn bad_ids_and_positions_are_refused_without_change() {
        let user = owned_user_id!("@a:x");
        let mut rs = Ruleset::server_default(&user);
        let before = rs.clone();
        let err = insert(&mut rs, override_rule(".m.rule.mine"), None, None).unwrap_err();
        assert_eq!(err.errcode, "M_INVALID_PARAM");
        let err = insert(&mut rs, override_rule("x"), Some("nope"), None).unwrap_err();
        assert_eq!(err.errcode, "M_UNKNOWN");
        let err = insert(&mut rs, override_rule("x"), Some(".m.rule.master"), None).unwrap_err();
        assert_eq!(err.errcode, "M_UNKNOWN");
        assert_eq!(content_of(&rs), content_of(&before));
        assert_eq!(
            remove(&mut rs, RuleKind::Override, ".m.rule.master")
                .unwrap_err()
                .errcode,
            "M_INVALID_PARAM"
        );
        assert_eq!(
            remove(&mut rs, RuleKind::Override, "nope")
                .unwrap_err()
                .errcode,
            "M_NOT_FOUND"
        );
        assert_eq!(
            set_enabled(&mut rs, RuleKind::Room, "nope", false)
                .unwrap_err()
                .errcode,
            "M_NOT_FOUND"
        );
    }

    #[test]
    fn stored_rules_keep_user_changes_and_current_defaults() {
        let user = owned_user_id!("@a:x");
        let room = owned_room_id!("!r:x");
        let mut rs = Ruleset::server_default(&user);
        insert(
            &mut rs,
            NewPushRule::Room(NewSimplePushRule::new(room.clone(), vec![])),
            None,
            None,
        )
        .unwrap();
        set_enabled(
            &mut rs,
            RuleKind::Override,
            ".m.rule.suppress_notices",
            false,
        )
        .unwrap();
        let parsed = parse_stored(&user, Some(&content_of(&rs)));
        assert!(parsed.get(RuleKind::Room, room.as_str()).is_some());
        assert!(
            !parsed
                .get(RuleKind::Override, ".m.rule.suppress_notices")
                .unwrap()
                .enabled()
        );
        assert_eq!(content_of(&parsed), content_of(&rs));
        assert_eq!(
            content_of(&parse_stored(&user, None)),
            content_of(&Ruleset::server_default(&user))
        );
    }
}
