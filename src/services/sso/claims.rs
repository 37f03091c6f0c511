//! From a provider's claims to an identity: the subject the account is linked by, the proposed
//! localpart, display name and e-mail (`user_mapping_provider`), and the attribute requirements.

use serde_json::{Map, Value};

use super::config::{AttributeRequirement, UserMapping};

/// Who signed in, as the provider says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub subject: String,
    pub localpart: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<String>,
}

/// A claim as text: strings as they are, numbers written out; anything else is not a name.
fn text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The identity in `claims`; an error when the subject claim is missing.
pub fn identity(mapping: &UserMapping, claims: &Map<String, Value>) -> Result<Identity, String> {
    let subject = text(claims, &mapping.subject_claim).ok_or_else(|| {
        format!(
            "the provider did not send the subject claim `{}`",
            mapping.subject_claim
        )
    })?;
    let claim = |name: &Option<String>| name.as_deref().and_then(|n| text(claims, n));
    Ok(Identity {
        subject,
        localpart: claim(&mapping.localpart_claim)
            .map(|l| match l.split_once('@') {
                Some((name, _)) if mapping.localpart_strip_domain => name.to_owned(),
                _ => l,
            })
            .and_then(|l| localpart_from(&l)),
        display_name: claim(&mapping.display_name_claim),
        email: claim(&mapping.email_claim),
    })
}

/// Whether every requirement holds: the claim equals the value, or is a list that holds it.
pub fn meets(requirements: &[AttributeRequirement], claims: &Map<String, Value>) -> bool {
    requirements.iter().all(|r| match claims.get(&r.attribute) {
        Some(Value::String(s)) => *s == r.value,
        Some(Value::Array(values)) => values.iter().any(|v| v.as_str() == Some(&r.value)),
        Some(Value::Bool(b)) => b.to_string() == r.value,
        Some(Value::Number(n)) => n.to_string() == r.value,
        _ => false,
    })
}

/// A Matrix localpart from a name: lower-cased; each character Matrix does not allow in a
/// localpart is written as `=` and the hex of its UTF-8 bytes (Synapse's mapping, so the same
/// users get the same ids). None when nothing is left.
pub fn localpart_from(name: &str) -> Option<String> {
    let mut out = String::new();
    for c in name.trim().to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/+".contains(c) {
            out.push(c);
        } else {
            let mut bytes = [0; 4];
            for b in c.encode_utf8(&mut bytes).bytes() {
                out.push_str(&format!("={b:02x}"));
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn the_default_mapping_reads_sub_preferred_username_name_and_email() {
        let id = identity(
            &UserMapping::default(),
            &claims(json!({
                "sub": "248289761001", "preferred_username": "Jane.Doe",
                "name": "Jane Doe", "email": "jane@example.com"
            })),
        )
        .unwrap();
        assert_eq!(id.subject, "248289761001");
        assert_eq!(id.localpart.as_deref(), Some("jane.doe"));
        assert_eq!(id.display_name.as_deref(), Some("Jane Doe"));
        assert_eq!(id.email.as_deref(), Some("jane@example.com"));
        let upn = claims(json!({ "sub": "x", "preferred_username": "Jane.Doe@corp.example.com" }));
        let kept = identity(&UserMapping::default(), &upn).unwrap();
        assert_eq!(
            kept.localpart.as_deref(),
            Some("jane.doe=40corp.example.com")
        );
        let strip = UserMapping {
            localpart_strip_domain: true,
            ..Default::default()
        };
        let stripped = identity(&strip, &upn).unwrap();
        assert_eq!(stripped.localpart.as_deref(), Some("jane.doe"));
        let none = identity(&UserMapping::default(), &claims(json!({ "sub": 7 }))).unwrap();
        assert_eq!((none.subject.as_str(), none.localpart), ("7", None));
        assert!(identity(&UserMapping::default(), &claims(json!({ "name": "x" }))).is_err());
    }

    #[test]
    fn localparts_keep_allowed_characters_and_escape_the_others() {
        assert_eq!(localpart_from("Alice").as_deref(), Some("alice"));
        assert_eq!(localpart_from("jean luc").as_deref(), Some("jean=20luc"));
        assert_eq!(localpart_from("zoë").as_deref(), Some("zo=c3=ab"));
        assert_eq!(localpart_from("a@b:c").as_deref(), Some("a=40b=3ac"));
        assert_eq!(localpart_from("  "), None);
    }

    #[test]
    fn requirements_match_a_value_or_a_member_of_a_list() {
        let req = |attribute: &str, value: &str| AttributeRequirement {
            attribute: attribute.into(),
            value: value.into(),
        };
        let c = claims(json!({ "groups": ["staff", "matrix"], "dept": "it", "admin": true }));
        assert!(meets(&[], &c));
        assert!(meets(&[req("groups", "matrix"), req("dept", "it")], &c));
        assert!(meets(&[req("admin", "true")], &c));
        assert!(!meets(&[req("groups", "sales")], &c));
        assert!(!meets(&[req("groups", "matrix"), req("dept", "hr")], &c));
        assert!(!meets(&[req("missing", "x")], &c));
    }
}
