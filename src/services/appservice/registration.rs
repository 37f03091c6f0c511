//! Reading and checking registration files. Each is YAML in the format Synapse reads (ruma's
//! `Registration`: `id`, `url`, `as_token`, `hs_token`, `sender_localpart`, `namespaces` of
//! `users`, `aliases` and `rooms` with `exclusive` and `regex`, `rate_limited`, `protocols`,
//! `receive_ephemeral`). Every problem is reported with the file and the field, and the server
//! does not start: duplicate ids or tokens, a regex that does not compile, a sender outside the
//! server, two registrations claiming the same namespace exclusively.
//!
//! A namespace regex matches from the start of the id (as Synapse's `re.match`): `@_irc_.*`
//! holds `@_irc_bob:example.org`.

use std::path::{Path, PathBuf};

use regex::Regex;
use ruma::{OwnedUserId, ServerName, UserId, api::appservice::Registration};

/// One namespace (`users`, `aliases` or `rooms`) of a registration, compiled.
#[derive(Debug, Default)]
pub struct Namespace {
    entries: Vec<(bool, String, Regex)>,
}

impl Namespace {
    fn compile(list: &[ruma::api::appservice::Namespace]) -> Result<Self, String> {
        let mut entries = Vec::new();
        for (i, ns) in list.iter().enumerate() {
            let regex = Regex::new(&format!("^(?:{})", ns.regex))
                .map_err(|e| format!("[{i}].regex `{}`: {e}", ns.regex))?;
            entries.push((ns.exclusive, ns.regex.clone(), regex));
        }
        Ok(Self { entries })
    }

    /// Whether `id` is in the namespace.
    pub fn matches(&self, id: &str) -> bool {
        self.entries.iter().any(|(_, _, r)| r.is_match(id))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `id` is in an exclusive part of the namespace.
    pub fn is_exclusive(&self, id: &str) -> bool {
        self.entries
            .iter()
            .any(|(exclusive, _, r)| *exclusive && r.is_match(id))
    }

    fn patterns(&self) -> impl Iterator<Item = (bool, &str)> {
        self.entries.iter().map(|(e, p, _)| (*e, p.as_str()))
    }
}

/// A registered application service.
#[derive(Debug)]
pub struct Appservice {
    pub registration: Registration,
    /// The file it was read from (named in errors and logs).
    pub file: PathBuf,
    /// Its own user: `@sender_localpart:server_name`.
    pub sender: OwnedUserId,
    pub users: Namespace,
    pub aliases: Namespace,
    pub rooms: Namespace,
    /// Typing, receipts and presence pushed too (`receive_ephemeral`, or MSC2409's
    /// `de.sorunome.msc2409.push_ephemeral`).
    pub push_ephemeral: bool,
    /// To-device messages of its exclusive users pushed in transactions (MSC4203), for services
    /// that ask for ephemeral events or declare `org.matrix.msc3202: true`.
    pub push_to_device: bool,
    /// Device list changes and one-time key counts in transactions (`org.matrix.msc3202: true`).
    pub msc3202: bool,
}

impl Appservice {
    /// Whether `user` is the application service's own user or in its user namespace.
    pub fn owns_user(&self, user: &UserId) -> bool {
        user == self.sender || self.users.matches(user.as_str())
    }
}

fn field_error(file: &Path, field: &str, why: impl std::fmt::Display) -> String {
    format!(
        "application service registration {}: `{field}`: {why}",
        file.display()
    )
}

/// Parses and checks one registration file's text.
pub fn parse(file: &Path, text: &str, server_name: &ServerName) -> Result<Appservice, String> {
    let value: yaml_serde::Value = yaml_serde::from_str(text).map_err(|e| {
        format!(
            "application service registration {}: not YAML: {e}",
            file.display()
        )
    })?;
    let registration: Registration = yaml_serde::from_value(value.clone())
        .map_err(|e| format!("application service registration {}: {e}", file.display()))?;
    let err = |field: &str, why: &dyn std::fmt::Display| field_error(file, field, why);
    for (field, v) in [
        ("id", &registration.id),
        ("as_token", &registration.as_token),
        ("hs_token", &registration.hs_token),
    ] {
        if v.trim().is_empty() {
            return Err(err(field, &"must not be empty"));
        }
    }
    if registration.as_token == registration.hs_token {
        return Err(err(
            "hs_token",
            &"must differ from as_token (each side proves itself to the other with its own)",
        ));
    }
    if let Some(url) = &registration.url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(err(
            "url",
            &format!("`{url}` is not an http(s) URL (null: no events are pushed)"),
        ));
    }
    let localpart = &registration.sender_localpart;
    let valid = !localpart.is_empty()
        && localpart.bytes().all(
            |b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'=' | b'-' | b'/' | b'+'),
        );
    if !valid {
        return Err(err(
            "sender_localpart",
            &format!("`{localpart}` may only hold a-z, 0-9 and ._=-/+"),
        ));
    }
    let sender = UserId::parse(format!("@{}:{server_name}", registration.sender_localpart))
        .map_err(|e| {
            err(
                "sender_localpart",
                &format!(
                    "`{}` does not make a user id: {e}",
                    registration.sender_localpart
                ),
            )
        })?;
    let users = Namespace::compile(&registration.namespaces.users)
        .map_err(|e| err("namespaces.users", &e))?;
    let aliases = Namespace::compile(&registration.namespaces.aliases)
        .map_err(|e| err("namespaces.aliases", &e))?;
    let rooms = Namespace::compile(&registration.namespaces.rooms)
        .map_err(|e| err("namespaces.rooms", &e))?;
    let push_ephemeral = registration.receive_ephemeral
        || value
            .get("de.sorunome.msc2409.push_ephemeral")
            .and_then(yaml_serde::Value::as_bool)
            .unwrap_or(false);
    let msc3202 = value
        .get("org.matrix.msc3202")
        .and_then(yaml_serde::Value::as_bool)
        .unwrap_or(false);
    let push_to_device = push_ephemeral || msc3202;
    Ok(Appservice {
        registration,
        file: file.to_owned(),
        sender,
        users,
        aliases,
        rooms,
        push_ephemeral,
        push_to_device,
        msc3202,
    })
}

/// Reads every registration file and checks them against each other.
pub fn load(files: &[PathBuf], server_name: &ServerName) -> Result<Vec<Appservice>, String> {
    let mut out: Vec<Appservice> = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| {
            format!(
                "application service registration {}: cannot read: {e}",
                file.display()
            )
        })?;
        let new = parse(file, &text, server_name)?;
        for old in &out {
            check_pair(old, &new)?;
        }
        out.push(new);
    }
    Ok(out)
}

/// Two registrations must not share an id or a token, nor claim the same ids exclusively.
fn check_pair(a: &Appservice, b: &Appservice) -> Result<(), String> {
    let clash = |field: &str, why: String| {
        Err(field_error(
            &b.file,
            field,
            format!("{why} (already in {})", a.file.display()),
        ))
    };
    let (ra, rb) = (&a.registration, &b.registration);
    if ra.id == rb.id {
        return clash("id", format!("`{}` is taken", rb.id));
    }
    let tokens_a = [&ra.as_token, &ra.hs_token];
    if tokens_a.contains(&&rb.as_token) {
        return clash("as_token", "the token is taken".into());
    }
    if tokens_a.contains(&&rb.hs_token) {
        return clash("hs_token", "the token is taken".into());
    }
    for (field, na, nb) in [
        ("namespaces.users", &a.users, &b.users),
        ("namespaces.aliases", &a.aliases, &b.aliases),
        ("namespaces.rooms", &a.rooms, &b.rooms),
    ] {
        for (exclusive, pattern) in nb.patterns() {
            let claimed_by_a = na.patterns().any(|(e, p)| p == pattern && (e || exclusive));
            if claimed_by_a {
                return clash(field, format!("`{pattern}` is claimed exclusively by both"));
            }
        }
    }
    if a.users.is_exclusive(b.sender.as_str()) {
        return clash(
            "sender_localpart",
            format!(
                "{} is in the exclusive user namespace of `{}`",
                b.sender, ra.id
            ),
        );
    }
    if b.users.is_exclusive(a.sender.as_str()) {
        return clash(
            "namespaces.users",
            format!("holds {}, the user of `{}`", a.sender, ra.id),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const IRC: &str = r##"
id: irc
url: "http://127.0.0.1:9999"
as_token: "as-irc"
hs_token: "hs-irc"
sender_localpart: _irc_bot
rate_limited: false
namespaces:
  users:
    - exclusive: true
      regex: "@_irc_.*"
  aliases:
    - exclusive: true
      regex: "#_irc_.*"
  rooms: []
de.sorunome.msc2409.push_ephemeral: true
"##;

    fn server() -> &'static ServerName {
        <&ServerName>::try_from("example.org").unwrap()
    }

    #[test]
    fn a_bridge_registration_is_read_with_its_namespaces() {
        let a = parse(Path::new("irc.yaml"), IRC, server()).unwrap();
        assert_eq!(a.sender, "@_irc_bot:example.org");
        assert!(a.push_ephemeral);
        assert_eq!(a.registration.rate_limited, Some(false));
        assert!(a.users.is_exclusive("@_irc_alice:example.org"));
        assert!(!a.users.matches("@alice:example.org"));
        // Anchored at the start: the pattern must match from the first character.
        assert!(!a.users.matches("@x_irc_alice:example.org"));
        assert!(a.aliases.is_exclusive("#_irc_chan:example.org"));
        assert!(a.owns_user(&a.sender));
    }

    #[test]
    fn mistakes_name_the_file_and_field() {
        let bad_regex = IRC.replace("\"@_irc_.*\"", "\"@_irc_(\"");
        let e = parse(Path::new("irc.yaml"), &bad_regex, server()).unwrap_err();
        assert!(
            e.contains("irc.yaml") && e.contains("namespaces.users") && e.contains("[0].regex"),
            "{e}"
        );
        let no_token = IRC.replace("as_token: \"as-irc\"\n", "");
        let e = parse(Path::new("irc.yaml"), &no_token, server()).unwrap_err();
        assert!(e.contains("irc.yaml") && e.contains("as_token"), "{e}");
        let same_tokens = IRC.replace("hs-irc", "as-irc");
        assert!(
            parse(Path::new("irc.yaml"), &same_tokens, server())
                .unwrap_err()
                .contains("`hs_token`")
        );
        let bad_sender = IRC.replace("_irc_bot", "Not Valid!");
        assert!(
            parse(Path::new("irc.yaml"), &bad_sender, server())
                .unwrap_err()
                .contains("`sender_localpart`")
        );
        let bad_url = IRC.replace("http://127.0.0.1:9999", "ftp://x");
        assert!(
            parse(Path::new("irc.yaml"), &bad_url, server())
                .unwrap_err()
                .contains("`url`")
        );
        assert!(
            parse(Path::new("irc.yaml"), "id: [", server())
                .unwrap_err()
                .contains("not YAML")
        );
    }

    #[test]
    fn registrations_may_not_clash() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let irc = write("irc.yaml", IRC);
        let slack_text = IRC
            .replace("id: irc", "id: slack")
            .replace("as-irc", "as-slack")
            .replace("hs-irc", "hs-slack")
            .replace("_irc_", "_slack_");
        let slack = write("slack.yaml", &slack_text);
        let both = load(&[irc.clone(), slack.clone()], server()).unwrap();
        assert_eq!(both.len(), 2);

        let same_id = write("same-id.yaml", &slack_text.replace("id: slack", "id: irc"));
        let e = load(&[irc.clone(), same_id], server()).unwrap_err();
        assert!(
            e.contains("same-id.yaml") && e.contains("`id`") && e.contains("irc.yaml"),
            "{e}"
        );
        let same_token = write("same-token.yaml", &slack_text.replace("as-slack", "hs-irc"));
        assert!(
            load(&[irc.clone(), same_token], server())
                .unwrap_err()
                .contains("`as_token`")
        );
        let same_users = write(
            "same-users.yaml",
            &slack_text.replace("\"@_slack_.*\"", "\"@_irc_.*\""),
        );
        assert!(
            load(&[irc.clone(), same_users], server())
                .unwrap_err()
                .contains("namespaces.users")
        );
        let squatting = write(
            "squat.yaml",
            &slack_text.replace(
                "sender_localpart: _slack_bot",
                "sender_localpart: _irc_squatter",
            ),
        );
        assert!(
            load(&[irc, squatting], server())
                .unwrap_err()
                .contains("`sender_localpart`")
        );
        let e = load(&[dir.path().join("missing.yaml")], server()).unwrap_err();
        assert!(
            e.contains("missing.yaml") && e.contains("cannot read"),
            "{e}"
        );
    }
}
