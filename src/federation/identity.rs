//! Third-party invites from our clients (`POST /rooms/{roomId}/invite` with `id_server`,
//! `id_access_token`, `medium`, `address`): the identity server named in the request is asked
//! whether the identifier is bound (v2 `hash_details` and `lookup`, sha256 or none); a bound
//! identifier is invited as its user, otherwise the invite is stored on the identity server
//! (`store-invite`) and the room gets the `m.room.third_party_invite` event with its token and
//! public keys. The identity server is reached over HTTPS at the host and port of `id_server`
//! (443 by default), with the TLS settings of federation.

use std::sync::Arc;

use base64::Engine as _;
use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId, events::StateEventType, thirdparty::Medium};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    error::{Error, Result},
    federation::discovery::{Destination, split_host_port},
    services::{
        Services,
        rooms::{self, membership::Membership, set_membership},
        timeline::append::NewEvent,
    },
};

/// Where `id_server` (`host[:port]`) is reached.
pub fn destination(id_server: &str) -> Result<Destination> {
    let (host, port) =
        split_host_port(id_server).ok_or_else(|| Error::invalid_param("Invalid id_server"))?;
    if host.is_empty() || id_server.contains('/') {
        return Err(Error::invalid_param("Invalid id_server"));
    }
    Ok(Destination {
        host: host.to_owned(),
        port: port.unwrap_or(443),
        host_header: id_server.to_owned(),
        tls_name: host.to_owned(),
    })
}

fn unreachable(what: impl std::fmt::Display) -> Error {
    Error::new(
        http::StatusCode::BAD_GATEWAY,
        "M_UNKNOWN",
        format!("identity server: {what}"),
    )
}

/// One request to the identity server; its JSON answer.
async fn request(
    services: &Services,
    id_server: &str,
    token: &str,
    method: http::Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Value> {
    let dest = destination(id_server)?;
    let bytes = body
        .map(|b| serde_json::to_vec(b).unwrap_or_default())
        .unwrap_or_default();
    let mut builder = http::Request::builder()
        .method(method)
        .uri(format!("https://{id_server}{path}"))
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    if body.is_some() {
        builder = builder.header(http::header::CONTENT_TYPE, "application/json");
    }
    let request = builder
        .body(bytes)
        .map_err(|e| Error::invalid_param(format!("Invalid id_server: {e}")))?;
    let answer = services
        .federation
        .transport
        .send(&dest, request)
        .await
        .map_err(|e| {
            tracing::info!("identity server {id_server}: {e}");
            unreachable("could not be reached")
        })?;
    let status = answer.status();
    let value: Value = serde_json::from_slice(answer.body()).unwrap_or(Value::Null);
    if !status.is_success() {
        // The answer's body stays in the log: echoing it would let a client read any server.
        tracing::info!("identity server {id_server}: {path} answered {status}: {value}");
        return Err(unreachable(format!("{path} answered {status}")));
    }
    Ok(value)
}

/// The lookup form of an identifier for `algorithm` (`sha256`: unpadded URL-safe base64 of the
/// SHA-256 of `"address medium pepper"`; `none`: `"address medium"`) (pure).
pub fn lookup_key(algorithm: &str, address: &str, medium: &str, pepper: &str) -> Option<String> {
    match algorithm {
        "sha256" => {
            let digest = Sha256::digest(format!("{address} {medium} {pepper}").as_bytes());
            Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest))
        }
        "none" => Some(format!("{address} {medium}")),
        _ => None,
    }
}

/// The user an identifier is bound to, if any.
pub async fn lookup(
    services: &Services,
    id_server: &str,
    token: &str,
    medium: &str,
    address: &str,
) -> Result<Option<OwnedUserId>> {
    let details = request(
        services,
        id_server,
        token,
        http::Method::GET,
        "/_matrix/identity/v2/hash_details",
        None,
    )
    .await?;
    let pepper = details
        .get("lookup_pepper")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let algorithms: Vec<&str> = details
        .get("algorithms")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let algorithm = ["sha256", "none"]
        .into_iter()
        .find(|a| algorithms.contains(a))
        .ok_or_else(|| unreachable("no known lookup algorithm"))?;
    let key = lookup_key(algorithm, address, medium, &pepper)
        .ok_or_else(|| unreachable("no known lookup algorithm"))?;
    let body = json!({ "addresses": [key], "algorithm": algorithm, "pepper": pepper });
    let answer = request(
        services,
        id_server,
        token,
        http::Method::POST,
        "/_matrix/identity/v2/lookup",
        Some(&body),
    )
    .await?;
    Ok(answer
        .get("mappings")
        .and_then(|m| m.get(&key))
        .and_then(Value::as_str)
        .and_then(|m| OwnedUserId::try_from(m).ok()))
}

/// A third-party invite of `sender` to `room_id`.
pub async fn invite(
    services: &Arc<Services>,
    room_id: OwnedRoomId,
    sender: OwnedUserId,
    id_server: &str,
    id_access_token: &str,
    medium: &Medium,
    address: &str,
) -> Result<()> {
    let (room, user) = (room_id.clone(), sender.clone());
    let store_body = services
        .run(move |s| {
            let short = rooms::short_room(s, &room)?;
            if !s.membership.is_joined(short, &user)? {
                return Err(Error::forbidden("You are not in this room"));
            }
            if !rooms::power::can(s, &room, &user, "invite")? {
                return Err(Error::forbidden("You may not invite to this room"));
            }
            let text = |kind: StateEventType, field: &str| -> Result<Option<Value>> {
                Ok(rooms::state_content(s, &room, &kind, "")?.and_then(|c| c.get(field).cloned()))
            };
            let mut body = json!({ "room_id": room, "sender": user });
            for (key, kind, field) in [
                ("room_name", StateEventType::RoomName, "name"),
                ("room_avatar_url", StateEventType::RoomAvatar, "url"),
                (
                    "room_join_rules",
                    StateEventType::RoomJoinRules,
                    "join_rule",
                ),
                ("room_alias", StateEventType::RoomCanonicalAlias, "alias"),
                ("room_type", StateEventType::RoomCreate, "type"),
            ] {
                if let Some(v) = text(kind, field)? {
                    body[key] = v;
                }
            }
            if let Some(profile) = s.users.profile(&user)? {
                if let Some(name) = profile.displayname {
                    body["sender_display_name"] = json!(name);
                }
                if let Some(avatar) = profile.avatar_url {
                    body["sender_avatar_url"] = json!(avatar);
                }
            }
            Ok(body)
        })
        .await?;

    if let Some(bound) = lookup(
        services,
        id_server,
        id_access_token,
        medium.as_str(),
        address,
    )
    .await?
    {
        return invite_user(services, room_id, sender, bound).await;
    }
    let mut body = store_body;
    body["medium"] = json!(medium.as_str());
    body["address"] = json!(address);
    let stored = request(
        services,
        id_server,
        id_access_token,
        http::Method::POST,
        "/_matrix/identity/v2/store-invite",
        Some(&body),
    )
    .await?;
    let token = stored
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unreachable("store-invite answered no token"))?;
    let public_keys = stored
        .get("public_keys")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let first = public_keys
        .first()
        .ok_or_else(|| unreachable("store-invite answered no public key"))?;
    let content = json!({
        "display_name": stored.get("display_name").cloned().unwrap_or(json!("")),
        "public_key": first.get("public_key").cloned().unwrap_or(Value::Null),
        "key_validity_url": first.get("key_validity_url").cloned().unwrap_or(Value::Null),
        "public_keys": public_keys,
    });
    let token = token.to_owned();
    services
        .run(move |s| {
            rooms::send(
                s,
                &room_id,
                &sender,
                NewEvent::state(StateEventType::RoomThirdPartyInvite, token, content),
            )
            .map(|_| ())
        })
        .await
}

/// A local user can be invited: an active account, not already joined.
pub(crate) fn check_local_invitee(s: &Services, room_id: &RoomId, invitee: &UserId) -> Result<()> {
    if !s.users.is_active(invitee)? {
        return Err(Error::not_found("Unknown user"));
    }
    let short = rooms::short_room(s, room_id)?;
    if s.membership.membership(short, invitee)? == Some(Membership::Join) {
        return Err(Error::forbidden("The user is already in the room"));
    }
    Ok(())
}

/// The invite of a user the identifier is bound to (local or of another server).
async fn invite_user(
    services: &Arc<Services>,
    room_id: OwnedRoomId,
    sender: OwnedUserId,
    invitee: OwnedUserId,
) -> Result<()> {
    if invitee.server_name() != services.globals.server_name() {
        return crate::federation::invite::invite_remote(services, room_id, sender, invitee, None)
            .await;
    }
    services
        .run(move |s| {
            check_local_invitee(s, &room_id, &invitee)?;
            set_membership(s, &room_id, &sender, &invitee, "invite", None, None).map(|_| ())
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::{destination, lookup_key};

    #[test]
    fn lookup_keys_follow_the_identity_service_api() {
        // The example of the identity service specification.
        assert_eq!(
            lookup_key("sha256", "alice@example.com", "email", "matrixrocks").as_deref(),
            Some("4kenr7N9drpCJ4AfalmlGQVsOn3o2RHjkADUpXJWZUc")
        );
        assert_eq!(
            lookup_key("none", "alice@example.com", "email", "x").as_deref(),
            Some("alice@example.com email")
        );
        assert_eq!(lookup_key("md5", "a", "email", "x"), None);
    }

    #[test]
    fn identity_servers_are_a_host_and_an_optional_port() {
        let d = destination("id.example.org").unwrap();
        assert_eq!(
            (d.host.as_str(), d.port, d.host_header.as_str()),
            ("id.example.org", 443, "id.example.org")
        );
        let d = destination("127.0.0.1:8090").unwrap();
        assert_eq!((d.host.as_str(), d.port), ("127.0.0.1", 8090));
        assert!(destination("https://id.example.org/x").is_err());
        assert!(destination("").is_err());
    }
}
