//! Which events of a room expire: the room's `m.room.retention` state (`min_lifetime`,
//! `max_lifetime`, in milliseconds), else the server's default policy, clamped to the allowed
//! range, as Synapse does (MSC1763).

use serde::Deserialize;
use serde_json::Value;

use super::lifetime::Lifetime;

/// `[retention.default_policy]`, and what a room's `m.room.retention` event says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub min_lifetime: Option<Lifetime>,
    pub max_lifetime: Option<Lifetime>,
}

impl Policy {
    /// The policy of an `m.room.retention` content; values that are not non-negative integers
    /// are ignored (as absent).
    pub fn from_content(content: &Value) -> Self {
        let field = |name: &str| content.get(name).and_then(Value::as_u64).map(Lifetime);
        Self {
            min_lifetime: field("min_lifetime"),
            max_lifetime: field("max_lifetime"),
        }
    }
}

/// The range a room's lifetimes are clamped to (`allowed_lifetime_min`/`max`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Allowed {
    pub min: Option<Lifetime>,
    pub max: Option<Lifetime>,
}

impl Allowed {
    fn clamp(&self, value: Lifetime) -> Lifetime {
        let mut value = value;
        if let Some(min) = self.min
            && value < min
        {
            value = min;
        }
        if let Some(max) = self.max
            && value > max
        {
            value = max;
        }
        value
    }
}

/// The lifetime after which a room's events expire (None: they never do): the room's
/// `max_lifetime`, else the default policy's, clamped to the allowed range.
pub fn effective_max_lifetime(
    room: Option<Policy>,
    default: Policy,
    allowed: Allowed,
) -> Option<Lifetime> {
    room.and_then(|p| p.max_lifetime)
        .or(default.max_lifetime)
        .map(|max| allowed.clamp(max))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const DAY: u64 = 86_400_000;

    #[test]
    fn room_policy_then_default_then_clamped() {
        let default = Policy {
            min_lifetime: None,
            max_lifetime: Some(Lifetime(30 * DAY)),
        };
        let allowed = Allowed {
            min: Some(Lifetime(DAY)),
            max: Some(Lifetime(365 * DAY)),
        };
        let room = |content: Value| Some(Policy::from_content(&content));
        // The room's own value.
        assert_eq!(
            effective_max_lifetime(room(json!({ "max_lifetime": 7 * DAY })), default, allowed),
            Some(Lifetime(7 * DAY))
        );
        // Clamped both ways.
        assert_eq!(
            effective_max_lifetime(room(json!({ "max_lifetime": 1000 })), default, allowed),
            Some(Lifetime(DAY))
        );
        assert_eq!(
            effective_max_lifetime(
                room(json!({ "max_lifetime": 1000 * DAY })),
                default,
                allowed
            ),
            Some(Lifetime(365 * DAY))
        );
        // No value, a bad value, or no event: the default.
        for content in [
            json!({ "min_lifetime": DAY }),
            json!({ "max_lifetime": "1d" }),
        ] {
            assert_eq!(
                effective_max_lifetime(room(content), default, allowed),
                Some(Lifetime(30 * DAY))
            );
        }
        assert_eq!(
            effective_max_lifetime(None, default, allowed),
            Some(Lifetime(30 * DAY))
        );
        // No default: rooms without a policy keep everything.
        assert_eq!(
            effective_max_lifetime(None, Policy::default(), allowed),
            None
        );
    }
}
