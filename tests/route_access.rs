//! Access control of every client route: a table with one entry per route of the client listener
//! (`parvis::api::route_list`, so a new route without an entry fails `every_route_has_an_entry`),
//! saying what the route needs, and one run where `@mallory` (no room in common with `@alice`)
//! calls each route on alice's room, event, user, device, filter, alias, backup and media. Every
//! answer must be the spec's, no 2xx answer to mallory may carry alice's private data, and alice's
//! data must be unchanged afterwards.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{TestServer, enc};
use reqwest::Method;
use serde_json::{Value, json};

/// What a route needs from its caller, and so what mallory (authenticated, in no room of alice's)
/// gets when she calls it on alice's ids.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Need {
    /// No access token: called without one.
    Public,
    /// Any authenticated user may do this to anyone (the spec says so: key queries, to-device, media).
    AnyUser,
    /// Acts on the caller's own data only, whatever ids the request names.
    Own,
    /// Ends or changes the caller's own session or account: called with a fresh user's token.
    Session,
    /// A room in the path: refused to a user who is not in the room.
    RoomMember,
    /// An event in the path that the caller may not see.
    Event,
    /// Another user's data in the path: refused.
    OtherUser,
    /// The admin API: refused to a user who is not a server admin.
    Admin,
}

/// One route: its method and path (version prefix removed, see `template`), what it needs, the
/// answer mallory must get, and what to send.
struct Entry {
    method: &'static str,
    template: &'static str,
    need: Need,
    status: u16,
    errcode: Option<&'static str>,
    query: &'static str,
    body: Option<Value>,
    /// Placeholders that take another value than the default (e.g. `user_id` → `mallory`).
    with: &'static [(&'static str, &'static str)],
    /// The answer may name alice's room id (resolving a public alias).
    names_room: bool,
}

impl Entry {
    fn q(mut self, query: &'static str) -> Self {
        self.query = query;
        self
    }
    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
    fn with(mut self, with: &'static [(&'static str, &'static str)]) -> Self {
        self.with = with;
        self
    }
    fn names_room(mut self) -> Self {
        self.names_room = true;
        self
    }
}

type Answer = (u16, Option<&'static str>);
const OK: Answer = (200, None);
const FORBIDDEN: Answer = (403, Some("M_FORBIDDEN"));
const NOT_FOUND: Answer = (404, Some("M_NOT_FOUND"));

fn e(method: &'static str, template: &'static str, need: Need, (status, errcode): Answer) -> Entry {
    Entry {
        method,
        template,
        need,
        status,
        errcode,
        query: "",
        body: None,
        with: &[],
        names_room: false,
    }
}

/// The password-check UIA stage for the user `{who}` (a placeholder).
fn password_auth(who: &str) -> Value {
    json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": who }, "password": "secret-password" })
}

/// The table: every route of the client listener. Placeholders in braces are replaced by alice's
/// ids (see `Fixture::values`), in paths, queries and bodies.
fn table() -> Vec<Entry> {
    use Need::*;
    let mallory_auth = password_auth("{mallory}");
    let fresh_auth = password_auth("{fresh}");
    vec![
        // Discovery, registration and login: public.
        e("GET", "/.well-known/matrix/client", Public, OK),
        e("GET", "/.well-known/matrix/server", Public, OK),
        e("GET", "client/versions", Public, OK),
        e("GET", "client/capabilities", AnyUser, OK),
        e("GET", "client/login", Public, OK),
        e("POST", "client/login", Public, FORBIDDEN).body(json!({
            "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "{user_id}" }, "password": "wrong-password"
        })),
        e("POST", "client/register", Public, (400, Some("M_USER_IN_USE")))
            .body(json!({ "username": "alice", "password": "secret-password", "auth": { "type": "m.login.dummy" } })),
        e("GET", "client/register/available", Public, (400, Some("M_USER_IN_USE"))).q("username=alice"),
        // The caller's account and session.
        e("GET", "client/account/whoami", Own, OK),
        e("POST", "client/account/password", Session, OK).body(json!({ "new_password": "another-password", "auth": fresh_auth.clone() })),
        e("POST", "client/account/deactivate", Session, OK).body(json!({ "auth": fresh_auth })),
        e("POST", "client/logout", Session, OK),
        e("POST", "client/logout/all", Session, OK),
        e("POST", "client/user/{user_id}/openid/request_token", OtherUser, FORBIDDEN),
        // Devices: the caller's own; alice's device id is unknown to mallory.
        e("GET", "client/devices", Own, OK),
        e("GET", "client/devices/{device_id}", Own, NOT_FOUND),
        e("PUT", "client/devices/{device_id}", Own, NOT_FOUND).body(json!({ "display_name": "renamed by mallory" })),
        e("DELETE", "client/devices/{device_id}", Own, NOT_FOUND).body(json!({ "auth": mallory_auth.clone() })),
        e("POST", "client/delete_devices", Own, OK).body(json!({ "devices": ["{device_id}"], "auth": mallory_auth.clone() })),
        // Profiles are public to read; only their owner writes them.
        e("GET", "client/profile/{user_id}", Public, OK),
        e("GET", "client/profile/{user_id}/{field}", Public, OK),
        e("PUT", "client/profile/{user_id}/{field}", OtherUser, FORBIDDEN).body(json!({ "displayname": "mallory was here" })),
        e("DELETE", "client/profile/{user_id}/{field}", OtherUser, FORBIDDEN),
        // Presence: readable by users who share a room; written by its owner only.
        e("GET", "client/presence/{user_id}/status", OtherUser, FORBIDDEN),
        e("PUT", "client/presence/{user_id}/status", OtherUser, FORBIDDEN).body(json!({ "presence": "offline", "status_msg": "mallory" })),
        // Account data, tags and filters: their owner only.
        e("GET", "client/user/{user_id}/account_data/{event_type}", OtherUser, FORBIDDEN),
        e("PUT", "client/user/{user_id}/account_data/{event_type}", OtherUser, FORBIDDEN).body(json!({ "v": "mallory" })),
        e("GET", "client/user/{user_id}/rooms/{room_id}/account_data/{event_type}", OtherUser, FORBIDDEN),
        e("PUT", "client/user/{user_id}/rooms/{room_id}/account_data/{event_type}", OtherUser, FORBIDDEN).body(json!({ "v": "mallory" })),
        e("GET", "client/user/{user_id}/rooms/{room_id}/tags", OtherUser, FORBIDDEN),
        e("PUT", "client/user/{user_id}/rooms/{room_id}/tags/{tag}", OtherUser, FORBIDDEN).body(json!({ "order": 0.1 })),
        e("DELETE", "client/user/{user_id}/rooms/{room_id}/tags/{tag}", OtherUser, FORBIDDEN),
        e("POST", "client/user/{user_id}/filter", OtherUser, FORBIDDEN).body(json!({ "room": { "rooms": [] } })),
        e("GET", "client/user/{user_id}/filter/{filter_id}", OtherUser, FORBIDDEN),
        // Rooms: creating one's own, the rooms one is in.
        e("POST", "client/createRoom", Own, OK).body(json!({ "preset": "private_chat" })),
        e("GET", "client/joined_rooms", Own, OK),
        // Membership of alice's invite-only room.
        e("POST", "client/join/{room_id_or_alias}", RoomMember, FORBIDDEN),
        e("POST", "client/rooms/{room_id}/join", RoomMember, FORBIDDEN),
        e("POST", "client/knock/{room_id_or_alias}", RoomMember, FORBIDDEN),
        e("POST", "client/rooms/{room_id}/invite", RoomMember, FORBIDDEN).body(json!({ "user_id": "{mallory}" })),
        e("POST", "client/rooms/{room_id}/leave", RoomMember, FORBIDDEN),
        e("POST", "client/rooms/{room_id}/forget", RoomMember, NOT_FOUND),
        e("POST", "client/rooms/{room_id}/kick", RoomMember, FORBIDDEN).body(json!({ "user_id": "{user_id}" })),
        e("POST", "client/rooms/{room_id}/ban", RoomMember, FORBIDDEN).body(json!({ "user_id": "{user_id}" })),
        e("POST", "client/rooms/{room_id}/unban", RoomMember, FORBIDDEN).body(json!({ "user_id": "{user_id}" })),
        e("GET", "client/rooms/{room_id}/members", RoomMember, FORBIDDEN),
        e("GET", "client/rooms/{room_id}/joined_members", RoomMember, FORBIDDEN),
        e("GET", "client/rooms/{room_id}/hierarchy", RoomMember, FORBIDDEN),
        e("POST", "client/rooms/{room_id}/upgrade", RoomMember, FORBIDDEN).body(json!({ "new_version": "11" })),
        // Room events and state.
        e("PUT", "client/rooms/{room_id}/send/{event_type}/{txn_id}", RoomMember, FORBIDDEN).body(json!({ "body": "mallory" })),
        e("PUT", "client/rooms/{room_id}/state/{event_type}/{state_key}", RoomMember, FORBIDDEN).body(json!({ "v": "mallory" })),
        e("PUT", "client/rooms/{room_id}/state/{event_type}/", RoomMember, FORBIDDEN).body(json!({ "v": "mallory" })),
        e("PUT", "client/rooms/{room_id}/state/{event_type}", RoomMember, FORBIDDEN).body(json!({ "v": "mallory" })),
        e("GET", "client/rooms/{room_id}/state/{event_type}/{state_key}", RoomMember, FORBIDDEN),
        e("GET", "client/rooms/{room_id}/state/{event_type}/", RoomMember, FORBIDDEN),
        e("GET", "client/rooms/{room_id}/state/{event_type}", RoomMember, FORBIDDEN),
        e("GET", "client/rooms/{room_id}/state", RoomMember, FORBIDDEN),
        e("GET", "client/rooms/{room_id}/messages", RoomMember, FORBIDDEN).q("dir=b"),
        e("GET", "client/rooms/{room_id}/context/{event_id}", Event, FORBIDDEN),
        e("GET", "client/rooms/{room_id}/event/{event_id}", Event, NOT_FOUND),
        e("GET", "client/rooms/{room_id}/relations/{event_id}", Event, NOT_FOUND),
        e("GET", "client/rooms/{room_id}/relations/{event_id}/{rel_type}", Event, NOT_FOUND).with(&[("rel_type", "event_type")]),
        e("GET", "client/rooms/{room_id}/relations/{event_id}/{rel_type}/{event_type}", Event, NOT_FOUND).with(&[("rel_type", "event_type")]),
        e("GET", "client/rooms/{room_id}/threads", RoomMember, FORBIDDEN),
        e("PUT", "client/rooms/{room_id}/redact/{event_id}/{txn_id}", Event, FORBIDDEN).body(json!({ "reason": "mallory" })),
        e("POST", "client/search", Own, OK).body(json!({ "search_categories": { "room_events": {
            "search_term": "s3cr3t", "filter": { "rooms": ["{room_id}"] }, "event_context": { "before_limit": 5, "after_limit": 5 }
        } } })),
        // Jump to date, room previews.
        e("GET", "client/rooms/{room_id}/timestamp_to_event", RoomMember, FORBIDDEN).q("ts=0&dir=f"),
        // The room summary needs no token (an invite-only room: 404, as an unknown one).
        e("GET", "client/room_summary/{room_id_or_alias}", Public, NOT_FOUND),
        e("GET", "client/rooms/{room_id_or_alias}/summary", Public, NOT_FOUND),
        e("GET", "client/summary/{room_id_or_alias}", Public, NOT_FOUND),
        // Mutual rooms: the caller's own rooms only (mallory shares none with alice).
        e("GET", "client/mutual_rooms", Own, OK).q("user_id={user_id}"),
        e("GET", "client/user/mutual_rooms", Own, OK).q("user_id={user_id}"),
        // Third-party identifiers: none are kept (api/client/third_party.rs).
        e("GET", "client/account/3pid", Own, OK),
        e("GET", "/_parvis/client/email/validate", Public, (403, Some("M_THREEPID_DENIED"))).q("sid=guess&client_secret=guess&token=guess"),
        e("POST", "client/account/3pid/add", Own, FORBIDDEN).body(json!({ "client_secret": "s3cr3t", "sid": "sid" })),
        e("POST", "client/account/3pid/bind", Own, FORBIDDEN)
            .body(json!({ "client_secret": "s3cr3t", "sid": "sid", "id_server": "id.example.org", "id_access_token": "t" })),
        e("POST", "client/account/3pid/delete", Own, OK).body(json!({ "medium": "email", "address": "alice@example.org" })),
        e("POST", "client/account/3pid/unbind", Own, OK).body(json!({ "medium": "email", "address": "alice@example.org" })),
        e("POST", "client/account/3pid/email/requestToken", Public, (403, Some("M_THREEPID_DENIED")))
            .body(json!({ "client_secret": "s3cr3t", "email": "m@example.org", "send_attempt": 1 })),
        e("POST", "client/account/3pid/msisdn/requestToken", Public, (403, Some("M_THREEPID_DENIED")))
            .body(json!({ "client_secret": "s3cr3t", "country": "GB", "phone_number": "07700900001", "send_attempt": 1 })),
        e("POST", "client/account/password/email/requestToken", Public, (400, Some("M_THREEPID_NOT_FOUND")))
            .body(json!({ "client_secret": "s3cr3t", "email": "alice@example.org", "send_attempt": 1 })),
        e("POST", "client/account/password/msisdn/requestToken", Public, (400, Some("M_THREEPID_NOT_FOUND")))
            .body(json!({ "client_secret": "s3cr3t", "country": "GB", "phone_number": "07700900001", "send_attempt": 1 })),
        e("POST", "client/register/email/requestToken", Public, (403, Some("M_THREEPID_DENIED")))
            .body(json!({ "client_secret": "s3cr3t", "email": "m@example.org", "send_attempt": 1 })),
        e("POST", "client/register/msisdn/requestToken", Public, (403, Some("M_THREEPID_DENIED")))
            .body(json!({ "client_secret": "s3cr3t", "country": "GB", "phone_number": "07700900001", "send_attempt": 1 })),
        // Third-party networks: no application service serves a protocol.
        e("GET", "client/thirdparty/protocols", AnyUser, OK),
        e("GET", "client/thirdparty/protocol/{protocol}", AnyUser, NOT_FOUND),
        e("GET", "client/thirdparty/location/{protocol}", AnyUser, NOT_FOUND),
        e("GET", "client/thirdparty/user/{protocol}", AnyUser, NOT_FOUND),
        e("GET", "client/thirdparty/location", AnyUser, OK).q("alias=%23alice-room%3Atest.local"),
        e("GET", "client/thirdparty/user", AnyUser, OK).q("userid={user_id}"),
        // Application services only (none is registered): no user token is one.
        e("POST", "client/appservice/{appservice_id}/ping", AnyUser, FORBIDDEN).body(json!({})),
        e("PUT", "client/directory/list/appservice/{network_id}/{room_id}", AnyUser, FORBIDDEN).body(json!({ "visibility": "public" })),
        // Discovery and tokens.
        e("GET", "/.well-known/matrix/support", Public, NOT_FOUND),
        e("GET", "client/voip/turnServer", AnyUser, OK),
        e("POST", "client/refresh", Public, (401, Some("M_UNKNOWN_TOKEN"))).body(json!({ "refresh_token": "guess" })),
        e("GET", "client/register/m.login.registration_token/validity", Public, OK).q("token=guess"),
        e("GET", "client/register/org.matrix.msc3231.login.registration_token/validity", Public, OK).q("token=guess"),
        e("GET", "client/admin/whois/{user_id}", Admin, FORBIDDEN),
        e("POST", "client/login/get_token", Own, (404, Some("M_UNRECOGNIZED"))).body(json!({})),
        // Single sign-on: not configured on this server (tests/oidc.rs tests it configured).
        e("GET", "client/login/sso/redirect", Public, (404, Some("M_UNRECOGNIZED"))).q("redirectUrl=https%3A%2F%2Fclient.test%2F"),
        e("GET", "client/login/sso/redirect/{idp_id}", Public, (404, Some("M_UNRECOGNIZED"))).q("redirectUrl=https%3A%2F%2Fclient.test%2F"),
        e("GET", "client/auth/m.login.sso/fallback/web", Public, (404, Some("M_UNRECOGNIZED"))).q("session=guess"),
        e("GET", "/_parvis/client/oidc/callback", Public, (404, Some("M_UNRECOGNIZED"))).q("code=guess&state=guess"),
        e("GET", "/_parvis/client/oidc/confirm/{idp_id}", Public, (404, Some("M_UNRECOGNIZED"))).q("session=guess"),
        e("POST", "/_parvis/client/oidc/backchannel_logout", Public, (404, Some("M_UNRECOGNIZED"))),
        e("POST", "/_parvis/client/sso/new_account", Public, (404, Some("M_UNRECOGNIZED"))),
        e("GET", "client/admin/lock/{user_id}", Admin, FORBIDDEN),
        e("PUT", "client/admin/lock/{user_id}", Admin, FORBIDDEN).body(json!({ "locked": true })),
        e("GET", "client/admin/suspend/{user_id}", Admin, FORBIDDEN),
        e("PUT", "client/admin/suspend/{user_id}", Admin, FORBIDDEN).body(json!({ "suspended": true })),
        // Reporting: an event only by a member who sees it; any room or user by anyone.
        e("POST", "client/rooms/{room_id}/report/{event_id}", Event, NOT_FOUND).body(json!({ "reason": "mallory" })),
        e("POST", "client/rooms/{room_id}/report", AnyUser, OK).body(json!({ "reason": "mallory" })),
        e("POST", "client/users/{user_id}/report", AnyUser, OK).body(json!({ "reason": "mallory" })),
        // Ephemeral: typing (as mallory herself), receipts, read markers.
        e("PUT", "client/rooms/{room_id}/typing/{user_id}", RoomMember, FORBIDDEN)
            .with(&[("user_id", "mallory")])
            .body(json!({ "typing": true, "timeout": 30000 })),
        e("POST", "client/rooms/{room_id}/receipt/{receipt_type}/{event_id}", RoomMember, FORBIDDEN).body(json!({})),
        e("POST", "client/rooms/{room_id}/read_markers", RoomMember, FORBIDDEN)
            .body(json!({ "m.fully_read": "{event_id}", "m.read": "{event_id}" })),
        // Sync: the caller's own rooms.
        e("GET", "client/sync", Own, OK).q("timeout=0"),
        e("POST", "client/sync", Own, OK) // simplified sliding sync (MSC4186)
            .q("timeout=0")
            .body(json!({ "lists": { "all": { "ranges": [[0, 20]], "required_state": [["*", "*"]], "timeline_limit": 10 } } })),
        // Room directory: aliases resolve publicly; only members with the power edit them.
        e("GET", "client/directory/room/{room_alias}", Public, OK).names_room(),
        e("PUT", "client/directory/room/{room_alias}", RoomMember, FORBIDDEN)
            .with(&[("room_alias", "squat_alias")])
            .body(json!({ "room_id": "{room_id}" })),
        e("DELETE", "client/directory/room/{room_alias}", RoomMember, FORBIDDEN),
        e("GET", "client/rooms/{room_id}/aliases", RoomMember, FORBIDDEN),
        e("GET", "client/directory/list/room/{room_id}", Public, OK),
        e("PUT", "client/directory/list/room/{room_id}", RoomMember, FORBIDDEN).body(json!({ "visibility": "public" })),
        e("GET", "client/publicRooms", Public, OK),
        e("POST", "client/publicRooms", AnyUser, OK).body(json!({})),
        e("POST", "client/user_directory/search", AnyUser, OK).body(json!({ "search_term": "alice" })),
        // Push rules, pushers, notifications: the caller's own (alice's `content` rule is not hers).
        e("GET", "client/pushrules/", Own, OK),
        e("GET", "client/pushrules/global/", Own, OK),
        e("GET", "client/pushrules/global/{kind}/{rule_id}", Own, NOT_FOUND),
        e("PUT", "client/pushrules/global/{kind}/{rule_id}", Own, OK)
            .with(&[("rule_id", "mallory_rule")])
            .body(json!({ "pattern": "mallory", "actions": ["notify"] })),
        e("DELETE", "client/pushrules/global/{kind}/{rule_id}", Own, NOT_FOUND),
        e("GET", "client/pushrules/global/{kind}/{rule_id}/actions", Own, NOT_FOUND),
        e("PUT", "client/pushrules/global/{kind}/{rule_id}/actions", Own, NOT_FOUND).body(json!({ "actions": [] })),
        e("GET", "client/pushrules/global/{kind}/{rule_id}/enabled", Own, NOT_FOUND),
        e("PUT", "client/pushrules/global/{kind}/{rule_id}/enabled", Own, NOT_FOUND).body(json!({ "enabled": false })),
        e("GET", "client/pushers", Own, OK),
        e("POST", "client/pushers/set", Own, OK).body(json!({ "pushkey": "k", "kind": null, "app_id": "a" })),
        e("GET", "client/notifications", Own, OK),
        // End-to-end keys: queries and to-device messages reach anyone; uploads are the caller's own.
        e("POST", "client/keys/upload", Own, (400, Some("M_INVALID_PARAM"))).body(json!({ "device_keys": {
            "user_id": "{user_id}", "device_id": "{device_id}", "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
            "keys": { "ed25519:{device_id}": "bWFsbG9yeQ", "curve25519:{device_id}": "bWFsbG9yeQ" }, "signatures": {}
        } })),
        e("POST", "client/keys/query", AnyUser, OK).body(json!({ "device_keys": { "{user_id}": [] } })),
        e("POST", "client/keys/claim", AnyUser, OK).body(json!({ "one_time_keys": { "{user_id}": { "{device_id}": "signed_curve25519" } } })),
        e("GET", "client/keys/changes", Own, OK).q("from={since}&to={since}"),
        e("POST", "client/keys/device_signing/upload", Own, (400, Some("M_INVALID_PARAM"))).body(json!({ "master_key": {
            "user_id": "{user_id}", "usage": ["master"], "keys": { "ed25519:bWFsbG9yeQ": "bWFsbG9yeQ" }
        } })),
        e("POST", "client/keys/signatures/upload", Own, OK)
            .body(json!({ "{user_id}": { "{device_id}": { "user_id": "{user_id}", "device_id": "{device_id}" } } })),
        e("PUT", "client/sendToDevice/{event_type}/{txn_id}", AnyUser, OK)
            .body(json!({ "messages": { "{user_id}": { "{device_id}": { "v": "mallory" } } } })),
        // Dehydrated devices (MSC3814): the caller's own.
        e("PUT", "client/dehydrated_device", Own, (400, None)).body(json!({ "device_id": "{device_id}", "device_data": {} })),
        e("GET", "client/dehydrated_device", Own, NOT_FOUND),
        e("DELETE", "client/dehydrated_device", Own, NOT_FOUND),
        e("POST", "client/dehydrated_device/{device_id}/events", Own, NOT_FOUND).body(json!({})),
        // Key backup: the caller's own versions (mallory has one of her own, see `Fixture`).
        e("POST", "client/room_keys/version", Own, OK).body(json!({ "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": {} })),
        e("GET", "client/room_keys/version", Own, OK),
        e("GET", "client/room_keys/version/{version}", Own, NOT_FOUND),
        e("PUT", "client/room_keys/version/{version}", Own, NOT_FOUND)
            .body(json!({ "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": {}, "version": "{version}" })),
        e("DELETE", "client/room_keys/version/{version}", Own, NOT_FOUND),
        e("GET", "client/room_keys/keys", Own, NOT_FOUND).q("version={version}"),
        e("PUT", "client/room_keys/keys", Own, NOT_FOUND).q("version={version}").body(json!({ "rooms": {} })),
        e("DELETE", "client/room_keys/keys", Own, NOT_FOUND).q("version={version}"),
        e("GET", "client/room_keys/keys/{room_id}", Own, NOT_FOUND).q("version={version}"),
        e("PUT", "client/room_keys/keys/{room_id}", Own, NOT_FOUND).q("version={version}").body(json!({ "sessions": {} })),
        e("DELETE", "client/room_keys/keys/{room_id}", Own, NOT_FOUND).q("version={version}"),
        e("GET", "client/room_keys/keys/{room_id}/{session_id}", Own, NOT_FOUND).q("version={version}"),
        e("PUT", "client/room_keys/keys/{room_id}/{session_id}", Own, NOT_FOUND).q("version={version}").body(backup_key("mallory")),
        e("DELETE", "client/room_keys/keys/{room_id}/{session_id}", Own, NOT_FOUND).q("version={version}"),
        // Media: readable by any user who knows the MXC URI; an MXC URI created by alice is hers to upload to.
        e("GET", "client/media/config", AnyUser, OK),
        e("GET", "client/media/download/{server_name}/{media_id}", AnyUser, OK),
        e("GET", "client/media/download/{server_name}/{media_id}/{filename}", AnyUser, OK),
        e("GET", "client/media/thumbnail/{server_name}/{media_id}", AnyUser, (400, None)).q("width=32&height=32"),
        e("GET", "media/config", AnyUser, OK),
        // The unauthenticated legacy endpoints are frozen (`media.freeze_legacy`): new media is not served.
        e("GET", "media/download/{server_name}/{media_id}", Public, NOT_FOUND),
        e("GET", "media/download/{server_name}/{media_id}/{filename}", Public, NOT_FOUND),
        e("GET", "media/thumbnail/{server_name}/{media_id}", Public, NOT_FOUND).q("width=32&height=32"),
        e("POST", "media/create", Own, OK),
        e("POST", "media/upload", Own, OK),
        e("PUT", "media/upload/{server_name}/{media_id}", OtherUser, FORBIDDEN).with(&[("media_id", "pending_media_id")]),
        // The admin API.
        e("GET", "/health", Public, OK),
        e("GET", "/_parvis/client/v1/rooms/{room_id}/webhooks", RoomMember, FORBIDDEN),
        e("POST", "/_parvis/client/v1/rooms/{room_id}/webhooks", RoomMember, FORBIDDEN).body(json!({ "name": "mallory's" })),
        e("DELETE", "/_parvis/client/v1/rooms/{room_id}/webhooks/{webhook_id}", RoomMember, FORBIDDEN),
        e("POST", "/_parvis/hooks/{webhook_id}/{secret}", Public, NOT_FOUND).body(json!({ "text": "hi" })),
        e("GET", "/_synapse/admin/v1/server_version", Admin, FORBIDDEN),
        e("GET", "/_synapse/admin/v1/users/{user_id}/accountdata", Admin, FORBIDDEN),
        e("GET", "/_synapse/admin/v1/users/{user_id}/pushers", Admin, FORBIDDEN),
        e("POST", "/_synapse/admin/v1/users/{user_id}/login", Admin, FORBIDDEN).body(json!({})),
        e("POST", "/_synapse/admin/v1/users/{user_id}/shadow_ban", Admin, FORBIDDEN).with(&[("user_id", "mallory")]).body(json!({})),
        e("PUT", "/_synapse/admin/v1/suspend/{user_id}", Admin, FORBIDDEN).with(&[("user_id", "mallory")]).body(json!({ "suspend": true })),
        e("DELETE", "/_synapse/admin/v1/users/{user_id}/shadow_ban", Admin, FORBIDDEN).with(&[("user_id", "mallory")]),
        e("GET", "/_synapse/admin/v1/users/{user_id}/override_ratelimit", Admin, FORBIDDEN),
        e("POST", "/_synapse/admin/v1/users/{user_id}/override_ratelimit", Admin, FORBIDDEN).with(&[("user_id", "mallory")]).body(json!({ "messages_per_second": 0 })),
        e("DELETE", "/_synapse/admin/v1/users/{user_id}/override_ratelimit", Admin, FORBIDDEN).with(&[("user_id", "mallory")]),
        e("POST", "/_synapse/admin/v1/send_server_notice", Admin, FORBIDDEN).body(json!({ "user_id": "{user_id}", "content": { "msgtype": "m.text", "body": "hi" } })),
        e("PUT", "/_synapse/admin/v1/send_server_notice/{txn_id}", Admin, FORBIDDEN).body(json!({ "user_id": "{user_id}", "content": { "msgtype": "m.text", "body": "hi" } })),
        e("GET", "/_synapse/admin/v1/registration_tokens", Admin, FORBIDDEN),
        e("POST", "/_synapse/admin/v1/registration_tokens/new", Admin, FORBIDDEN).body(json!({})),
        e("GET", "/_synapse/admin/v1/registration_tokens/{token}", Admin, FORBIDDEN),
        e("PUT", "/_synapse/admin/v1/registration_tokens/{token}", Admin, FORBIDDEN).body(json!({})),
        e("DELETE", "/_synapse/admin/v1/registration_tokens/{token}", Admin, FORBIDDEN),
        e("GET", "/_synapse/admin/v1/rooms/{room_id}/forward_extremities", Admin, FORBIDDEN),
        e("DELETE", "/_synapse/admin/v1/rooms/{room_id}/forward_extremities", Admin, FORBIDDEN),
        e("GET", "/_synapse/admin/v1/rooms/{room_id}/messages", Admin, FORBIDDEN),
        e("GET", "/_synapse/admin/v1/room/{room_id}/timestamp_to_event", Admin, FORBIDDEN).q("ts=1"),
        e("GET", "/_synapse/admin/v1/media/{server_name}/{media_id}", Admin, FORBIDDEN),
        e("DELETE", "/_synapse/admin/v1/media/{server_name}/{media_id}", Admin, FORBIDDEN),
        e("POST", "/_synapse/admin/v1/media/delete", Admin, FORBIDDEN).q("before_ts=1").body(json!({})),
        e("POST", "/_synapse/admin/v1/media/quarantine/{server_name}/{media_id}", Admin, FORBIDDEN).body(json!({})),
        e("POST", "/_synapse/admin/v1/media/unquarantine/{server_name}/{media_id}", Admin, FORBIDDEN).body(json!({})),
        e("POST", "/_synapse/admin/v1/room/{room_id}/media/quarantine", Admin, FORBIDDEN).body(json!({})),
        e("POST", "/_synapse/admin/v1/user/{user_id}/media/quarantine", Admin, FORBIDDEN).body(json!({})),
        e("POST", "/_synapse/admin/v1/media/protect/{media_id}", Admin, FORBIDDEN).body(json!({})),
        e("POST", "/_synapse/admin/v1/media/unprotect/{media_id}", Admin, FORBIDDEN).body(json!({})),
        e("POST", "/_synapse/admin/v1/purge_media_cache", Admin, FORBIDDEN).q("before_ts=1").body(json!({})),
        e("GET", "/_synapse/admin/v1/room/{room_id}/media", Admin, FORBIDDEN),
        e("GET", "/_synapse/admin/v1/users/{user_id}/media", Admin, FORBIDDEN),
        e("GET", "/_synapse/admin/v3/users/{user_id}/media", Admin, FORBIDDEN),
        e("DELETE", "/_synapse/admin/v1/users/{user_id}/media", Admin, FORBIDDEN),
        e("GET", "/_synapse/admin/v1/statistics/users/media", Admin, FORBIDDEN),
        e("POST", "/_parvis/admin/v1/backup", Admin, FORBIDDEN).body(json!({})),
        e("GET", "/_parvis/admin/v1/jobs", Admin, FORBIDDEN),
        e("GET", "/_parvis/admin/v1/jobs/{job_id}", Admin, FORBIDDEN),
        e("POST", "/_parvis/admin/v1/rooms/{room_id}/export", Admin, FORBIDDEN).body(json!({})),
        e("POST", "/_parvis/admin/v1/users/{user_id}/export", Admin, FORBIDDEN).body(json!({})),
        e("GET", "/_parvis/admin/v1/exports/{job_id}", Admin, FORBIDDEN),
        e("GET", "/_synapse/admin/v1/rooms/{room_id}/block", Admin, FORBIDDEN),
        e("PUT", "/_synapse/admin/v1/rooms/{room_id}/block", Admin, FORBIDDEN).body(json!({ "block": true })),
        e("GET", "/_synapse/admin/v2/users", Admin, FORBIDDEN),
        e("GET", "/_synapse/admin/v2/users/{user_id}", Admin, FORBIDDEN),
        e("PUT", "/_synapse/admin/v2/users/{user_id}", Admin, FORBIDDEN).body(json!({ "displayname": "mallory" })),
        e("POST", "/_synapse/admin/v1/deactivate/{user_id}", Admin, FORBIDDEN).body(json!({})),
        e("POST", "/_synapse/admin/v1/reset_password/{user_id}", Admin, FORBIDDEN).body(json!({ "new_password": "mallory-password" })),
        e("GET", "/_synapse/admin/v1/users/{user_id}/admin", Admin, FORBIDDEN),
        e("PUT", "/_synapse/admin/v1/users/{user_id}/admin", Admin, FORBIDDEN).with(&[("user_id", "mallory")]).body(json!({ "admin": true })),
        e("GET", "/_synapse/admin/v1/whois/{user_id}", Admin, FORBIDDEN),
        e("GET", "/_synapse/admin/v2/users/{user_id}/devices", Admin, FORBIDDEN),
        e("GET", "/_synapse/admin/v2/users/{user_id}/devices/{device_id}", Admin, FORBIDDEN),
        e("PUT", "/_synapse/admin/v2/users/{user_id}/devices/{device_id}", Admin, FORBIDDEN).body(json!({ "display_name": "mallory" })),
        e("DELETE", "/_synapse/admin/v2/users/{user_id}/devices/{device_id}", Admin, FORBIDDEN),
        e("GET", "/_synapse/admin/v1/users/{user_id}/joined_rooms", Admin, FORBIDDEN),
        e("GET", "/_synapse/admin/v1/rooms", Admin, FORBIDDEN),
        e("GET", "/_synapse/admin/v1/rooms/{room_id}", Admin, FORBIDDEN),
        e("GET", "/_synapse/admin/v1/rooms/{room_id}/members", Admin, FORBIDDEN),
        e("GET", "/_synapse/admin/v1/rooms/{room_id}/state", Admin, FORBIDDEN),
        e("POST", "/_synapse/admin/v1/join/{room}", Admin, FORBIDDEN).body(json!({ "user_id": "{mallory}" })),
        e("DELETE", "/_synapse/admin/v2/rooms/{room_id}", Admin, FORBIDDEN).body(json!({})),
        e("DELETE", "/_synapse/admin/v1/rooms/{room_id}", Admin, FORBIDDEN).body(json!({})),
        e("POST", "/_synapse/admin/v1/purge_history/{room_id}", Admin, FORBIDDEN).body(json!({ "purge_up_to_ts": 1 })),
        e("POST", "/_synapse/admin/v1/purge_history/{room_id}/{event_id}", Admin, FORBIDDEN).body(json!({})),
        e("GET", "/_synapse/admin/v1/purge_history_status/{purge_id}", Admin, FORBIDDEN),
        e("GET", "/_synapse/admin/v2/rooms/{room_id}/delete_status", Admin, FORBIDDEN),
        e("GET", "/_synapse/admin/v2/rooms/delete_status/{delete_id}", Admin, FORBIDDEN),
        e("GET", "/_synapse/admin/v1/event_reports", Admin, FORBIDDEN),
        e("GET", "/_synapse/admin/v1/event_reports/{report_id}", Admin, FORBIDDEN),
        e("DELETE", "/_synapse/admin/v1/event_reports/{report_id}", Admin, FORBIDDEN),
    ]
}

fn backup_key(marker: &str) -> Value {
    json!({ "first_message_index": 0, "forwarded_count": 0, "is_verified": false,
            "session_data": { "ephemeral": marker, "ciphertext": marker, "mac": marker } })
}

/// A route's path with its version prefix removed: `/_matrix/client/{r0,v1,v3}/x`,
/// `/_matrix/client/unstable/x` and `/_matrix/client/unstable/<namespace.with.dots>/x` become
/// `client/x` (`media/x` for `/_matrix/media/...`); other paths stay as they are.
fn template(path: &str) -> String {
    for (prefix, short) in [
        ("/_matrix/client/", "client/"),
        ("/_matrix/media/", "media/"),
    ] {
        let Some(rest) = path.strip_prefix(prefix) else {
            continue;
        };
        let Some((version, rest)) = rest.split_once('/') else {
            return format!("{short}{rest}");
        };
        let rest = match version {
            "r0" | "v1" | "v3" => rest,
            "unstable" => rest
                .split_once('/')
                .filter(|(ns, _)| ns.contains('.'))
                .map_or(rest, |(_, r)| r),
            _ => return format!("{short}{version}/{rest}"),
        };
        return format!("{short}{rest}");
    }
    path.to_owned()
}

#[test]
fn every_route_has_an_entry() {
    let table = table();
    let mut keys = BTreeSet::new();
    for entry in &table {
        assert!(
            keys.insert((entry.method, entry.template)),
            "two entries for {} {}",
            entry.method,
            entry.template
        );
        if matches!(
            entry.need,
            Need::RoomMember | Need::Event | Need::OtherUser | Need::Admin
        ) {
            assert!(
                entry.status >= 400,
                "{} {}: refused routes expect an error",
                entry.method,
                entry.template
            );
        }
        if entry.need == Need::Admin {
            assert_eq!(
                (entry.status, entry.errcode),
                FORBIDDEN,
                "{} {}",
                entry.method,
                entry.template
            );
        }
    }
    let routes: BTreeSet<(String, String)> = parvis::api::route_list()
        .into_iter()
        .map(|(method, path)| (method.to_string(), template(&path)))
        .collect();
    let missing: Vec<_> = routes
        .iter()
        .filter(|(m, t)| !keys.contains(&(m.as_str(), t.as_str())))
        .collect();
    assert!(
        missing.is_empty(),
        "routes without an entry in tests/route_access.rs `table`: {missing:#?}"
    );
    let stale: Vec<_> = keys
        .iter()
        .filter(|(m, t)| !routes.contains(&(m.to_string(), t.to_string())))
        .collect();
    assert!(
        stale.is_empty(),
        "entries for routes the router does not serve: {stale:#?}"
    );
}

/// Alice's private data, made before mallory calls anything. Every private value carries the marker
/// `s3cr3t`, which no 2xx answer to mallory may contain.
struct Fixture {
    server: TestServer,
    alice: String,
    mallory: String,
    values: BTreeMap<&'static str, String>,
}

impl Fixture {
    async fn new(server: TestServer) -> Self {
        let (alice_id, alice) = server.register("alice").await;
        let (mallory_id, mallory) = server.register("mallory").await;
        // Mallory keeps a moderator's power level in alice's room (as one does after leaving): power
        // alone must never let a non-member act on the room.
        let power = json!({ "users": { mallory_id.clone(): 50 } });
        let room = server
            .create_room(
                &alice,
                json!({ "preset": "private_chat", "name": "s3cr3t name", "topic": "s3cr3t topic", "power_level_content_override": power }),
            )
            .await;
        let r = enc(&room);
        let event = server
            .send_text(&alice, &room, "t1", "s3cr3t message")
            .await;
        for key in ["", "k"] {
            server
                .put(
                    &format!("/_matrix/client/v3/rooms/{r}/state/org.example.secret/{key}"),
                    &alice,
                    json!({ "v": "s3cr3t state" }),
                )
                .await;
        }
        let u = enc(&alice_id);
        let filter = server
            .post(
                &format!("/_matrix/client/v3/user/{u}/filter"),
                &alice,
                json!({ "room": { "not_types": ["s3cr3t.type"] } }),
            )
            .await;
        server
            .put(
                &format!("/_matrix/client/v3/user/{u}/account_data/org.example.secret"),
                &alice,
                json!({ "v": "s3cr3t global" }),
            )
            .await;
        server
            .put(
                &format!("/_matrix/client/v3/user/{u}/rooms/{r}/account_data/org.example.secret"),
                &alice,
                json!({ "v": "s3cr3t room" }),
            )
            .await;
        server
            .put(
                &format!("/_matrix/client/v3/user/{u}/rooms/{r}/tags/u.s3cr3t"),
                &alice,
                json!({ "order": 0.5 }),
            )
            .await;
        let device = server
            .get("/_matrix/client/v3/account/whoami", &alice)
            .await["device_id"]
            .as_str()
            .unwrap()
            .to_owned();
        server
            .put(
                &format!("/_matrix/client/v3/devices/{}", enc(&device)),
                &alice,
                json!({ "display_name": "s3cr3t phone" }),
            )
            .await;
        server
            .put(
                "/_matrix/client/v3/directory/room/%23alice-room:test.local",
                &alice,
                json!({ "room_id": room }),
            )
            .await;
        server
            .put(
                &format!("/_matrix/client/v3/presence/{u}/status"),
                &alice,
                json!({ "presence": "online", "status_msg": "s3cr3t status" }),
            )
            .await;
        server
            .put(
                "/_matrix/client/v3/pushrules/global/content/alice_rule",
                &alice,
                json!({ "pattern": "s3cr3t pattern", "actions": ["notify"] }),
            )
            .await;
        let backup = json!({ "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": { "public_key": "s3cr3t key" } });
        let version = server
            .post("/_matrix/client/v3/room_keys/version", &alice, backup)
            .await["version"]
            .as_str()
            .unwrap()
            .to_owned();
        server
            .put(
                &format!("/_matrix/client/v3/room_keys/keys/{r}/session1?version={version}"),
                &alice,
                backup_key("s3cr3t session"),
            )
            .await;
        // Mallory's own backup, so that a version number of hers exists too.
        let backup =
            json!({ "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": {} });
        server
            .post("/_matrix/client/v3/room_keys/version", &mallory, backup)
            .await;
        let media = upload(&server, &alice).await;
        let pending = server
            .post("/_matrix/media/v1/create", &alice, json!({}))
            .await["content_uri"]
            .as_str()
            .unwrap()
            .to_owned();
        let since = server
            .get("/_matrix/client/v3/sync?timeout=0", &mallory)
            .await["next_batch"]
            .as_str()
            .unwrap()
            .to_owned();

        let media_id = |mxc: &str| mxc.rsplit('/').next().unwrap().to_owned();
        let values = BTreeMap::from([
            ("room_id", room.clone()),
            ("room_id_or_alias", room.clone()),
            ("room", room),
            ("event_id", event),
            ("user_id", alice_id),
            ("mallory", mallory_id),
            ("device_id", device),
            (
                "filter_id",
                filter["filter_id"].as_str().unwrap().to_owned(),
            ),
            ("event_type", "org.example.secret".to_owned()),
            ("state_key", "k".to_owned()),
            ("txn_id", "mallory-txn".to_owned()),
            ("receipt_type", "m.read".to_owned()),
            ("tag", "u.s3cr3t".to_owned()),
            ("field", "displayname".to_owned()),
            ("room_alias", "#alice-room:test.local".to_owned()),
            ("squat_alias", "#mallory-squat:test.local".to_owned()),
            ("server_name", "test.local".to_owned()),
            ("media_id", media_id(&media)),
            ("pending_media_id", media_id(&pending)),
            ("filename", "f.txt".to_owned()),
            ("kind", "content".to_owned()),
            ("rule_id", "alice_rule".to_owned()),
            ("mallory_rule", "mallory_rule".to_owned()),
            ("version", version),
            ("session_id", "session1".to_owned()),
            ("delete_id", "unknown".to_owned()),
            ("report_id", "1".to_owned()),
            ("since", since),
            ("protocol", "irc".to_owned()),
            ("appservice_id", "bridge".to_owned()),
            ("network_id", "net".to_owned()),
            ("webhook_id", "nohook".to_owned()),
            ("job_id", "nojob".to_owned()),
            ("purge_id", "nopurge".to_owned()),
            ("token", "notoken".to_owned()),
            ("secret", "nosecret".to_owned()),
            ("idp_id", "company".to_owned()),
        ]);
        Fixture {
            server,
            alice,
            mallory,
            values,
        }
    }

    /// `text` with every `{placeholder}` replaced, the entry's own choices first; `encode` for paths.
    fn fill(&self, text: &str, with: &[(&str, &str)], fresh: Option<&str>, encode: bool) -> String {
        let mut out = text.to_owned();
        for (placeholder, key) in with {
            out = out.replace(&format!("{{{placeholder}}}"), &self.value(key, encode));
        }
        if let Some(fresh) = fresh {
            out = out.replace("{fresh}", fresh);
        }
        for key in self.values.keys() {
            out = out.replace(&format!("{{{key}}}"), &self.value(key, encode));
        }
        out
    }

    fn value(&self, key: &str, encode: bool) -> String {
        let value = &self.values[key];
        if encode { enc(value) } else { value.clone() }
    }

    /// What alice sees of her own data: must be the same before and after mallory's calls.
    async fn alice_view(&self) -> Value {
        let s = &self.server;
        let (u, r, a) = (
            enc(&self.values["user_id"]),
            enc(&self.values["room_id"]),
            &self.alice,
        );
        let version = &self.values["version"];
        json!({
            "account_data": s.get(&format!("/_matrix/client/v3/user/{u}/account_data/org.example.secret"), a).await,
            "room_account_data": s.get(&format!("/_matrix/client/v3/user/{u}/rooms/{r}/account_data/org.example.secret"), a).await,
            "tags": s.get(&format!("/_matrix/client/v3/user/{u}/rooms/{r}/tags"), a).await,
            "filter": s.get(&format!("/_matrix/client/v3/user/{u}/filter/{}", self.values["filter_id"]), a).await,
            "devices": s.get("/_matrix/client/v3/devices", a).await["devices"].as_array().unwrap().iter()
                .map(|d| json!([d["device_id"], d["display_name"]])).collect::<Vec<_>>(),
            "profile": s.get(&format!("/_matrix/client/v3/profile/{u}"), a).await,
            "presence": s.get(&format!("/_matrix/client/v3/presence/{u}/status"), a).await["status_msg"],
            "state": sorted_events(s.get(&format!("/_matrix/client/v3/rooms/{r}/state"), a).await),
            "members": sorted_events(s.get(&format!("/_matrix/client/v3/rooms/{r}/members"), a).await["chunk"].take()),
            "messages": s.get(&format!("/_matrix/client/v3/rooms/{r}/messages?dir=b&limit=100"), a).await["chunk"]
                .as_array().unwrap().iter().map(|e| e["event_id"].clone()).collect::<Vec<_>>(),
            "aliases": s.get(&format!("/_matrix/client/v3/rooms/{r}/aliases"), a).await,
            "visibility": s.get(&format!("/_matrix/client/v3/directory/list/room/{r}"), a).await,
            "backup": s.get("/_matrix/client/v3/room_keys/version", a).await,
            "backup_keys": s.get(&format!("/_matrix/client/v3/room_keys/keys?version={version}"), a).await,
            "push_rules": s.get("/_matrix/client/v3/pushrules/", a).await,
            "keys": s.post("/_matrix/client/v3/keys/query", a, json!({ "device_keys": { self.values["user_id"].clone(): [] } })).await["device_keys"].take(),
        })
    }
}

fn sorted_events(events: Value) -> Value {
    let mut list: Vec<Value> = events.as_array().cloned().unwrap_or_default();
    for event in &mut list {
        event.as_object_mut().map(|e| e.remove("unsigned")); // `age` grows
    }
    list.sort_by_key(|e| e["event_id"].as_str().unwrap_or_default().to_owned());
    Value::Array(list)
}

async fn upload(server: &TestServer, token: &str) -> String {
    let res = server
        .http
        .post(format!(
            "{}/_matrix/media/v3/upload?filename=f.txt",
            server.base
        ))
        .bearer_auth(token)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    res.json::<Value>().await.unwrap()["content_uri"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Sends a request; returns the status and the body as text.
async fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (u16, String) {
    let mut req = server.http.request(
        Method::from_bytes(method.as_bytes()).unwrap(),
        format!("{}{}", server.base, path),
    );
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.header("content-type", "application/json").body(body);
    }
    let res = req.send().await.expect("request sent");
    (res.status().as_u16(), res.text().await.unwrap_or_default())
}

#[tokio::test]
async fn a_stranger_gets_the_specs_error_on_every_route_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new(TestServer::start(dir.path()).await).await;
    let s = &fx.server;
    let alice_since = s.get("/_matrix/client/v3/sync?timeout=0", &fx.alice).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = fx.alice_view().await;

    let table = table();
    let by_key: BTreeMap<(&str, &str), &Entry> =
        table.iter().map(|e| ((e.method, e.template), e)).collect();
    let mut failures = Vec::new();
    let mut fresh_users = 0;
    for (method, path) in parvis::api::route_list() {
        let (method, key) = (method.to_string(), template(&path));
        let Some(entry) = by_key.get(&(method.as_str(), key.as_str())) else {
            continue;
        };
        let fresh = if entry.need == Need::Session {
            fresh_users += 1;
            Some(s.register(&format!("eve{fresh_users}")).await)
        } else {
            None
        };
        let fresh_name = fresh.as_ref().map(|(id, _)| id.as_str());
        let token = match entry.need {
            Need::Public => None,
            Need::Session => fresh.as_ref().map(|(_, token)| token.as_str()),
            _ => Some(fx.mallory.as_str()),
        };
        let mut url = fx.fill(&path, entry.with, fresh_name, true);
        if !entry.query.is_empty() {
            url = format!(
                "{url}?{}",
                fx.fill(entry.query, entry.with, fresh_name, true)
            );
        }
        let body = entry
            .body
            .as_ref()
            .map(|b| fx.fill(&b.to_string(), entry.with, fresh_name, false));
        // Every route but the public ones wants an access token.
        if entry.need != Need::Public {
            let (status, text) = send(s, &method, &url, None, body.clone()).await;
            if status != 401 || !text.contains("M_MISSING_TOKEN") {
                failures.push(format!("{method} {path} without a token: expected 401 M_MISSING_TOKEN, got {status}: {text}"));
            }
        }
        let (mut status, mut text) = send(s, &method, &url, token, body.clone()).await;
        // User-interactive auth: the password stage, sent again in the session the first answer opened.
        if status == 401
            && let Some(mut body) = body.and_then(|b| serde_json::from_str::<Value>(&b).ok())
            && let Some(session) = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|a| a["session"].as_str().map(str::to_owned))
            && body.get("auth").is_some()
        {
            body["auth"]["session"] = json!(session);
            (status, text) = send(s, &method, &url, token, Some(body.to_string())).await;
        }
        let errcode = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["errcode"].as_str().map(str::to_owned));
        let expected_code = entry.errcode.map(str::to_owned);
        if status != entry.status || (entry.errcode.is_some() && errcode != expected_code) {
            failures.push(format!(
                "{method} {path} ({:?}): expected {} {:?}, got {status} {errcode:?}: {}",
                entry.need,
                entry.status,
                entry.errcode,
                text.chars().take(200).collect::<String>()
            ));
        }
        let leaks = (200..300).contains(&status)
            && entry.need != Need::Session
            && (text.contains("s3cr3t")
                || (!entry.names_room && text.contains(fx.values["room_id"].as_str())));
        if leaks {
            failures.push(format!(
                "{method} {path}: the answer shows alice's private data: {}",
                text.chars().take(300).collect::<String>()
            ));
        }
    }

    // Alice's data is unchanged, and her room saw nothing happen (no event, receipt, typing, state).
    let after = fx.alice_view().await;
    for (field, value) in before.as_object().unwrap() {
        if after[field] != *value {
            failures.push(format!(
                "alice's {field} changed: before {value}, after {}",
                after[field]
            ));
        }
    }
    let sync = s
        .get(
            &format!(
                "/_matrix/client/v3/sync?timeout=0&since={}",
                enc(&alice_since)
            ),
            &fx.alice,
        )
        .await;
    if let Some(room) = sync["rooms"]["join"].get(&fx.values["room_id"]) {
        for section in ["timeline", "state", "ephemeral", "account_data"] {
            let events = room[section]["events"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !events.is_empty() {
                failures.push(format!(
                    "alice's room shows new {section} events: {events:?}"
                ));
            }
        }
    }
    let global = sync["account_data"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !global.is_empty() {
        failures.push(format!("alice's account data changed: {global:?}"));
    }
    let (status, _) = send(
        s,
        "GET",
        "/_synapse/admin/v2/users",
        Some(&fx.mallory),
        None,
    )
    .await;
    if status != 403 {
        failures.push(format!(
            "mallory became an admin: GET /_synapse/admin/v2/users answered {status}"
        ));
    }
    assert!(
        failures.is_empty(),
        "{} access-control failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A former member reads the room up to her leave and nothing after; an event named under another
/// room (one the caller is in) is not found there.
#[tokio::test]
async fn a_former_member_sees_nothing_after_her_leave_and_events_stay_in_their_room() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let (_, alice) = s.register("alice").await;
    let (mallory_id, mallory) = s.register("mallory").await;
    let room = s
        .create_room(
            &alice,
            json!({ "preset": "private_chat", "topic": "open topic" }),
        )
        .await;
    let r = enc(&room);
    s.post(
        &format!("/_matrix/client/v3/rooms/{r}/invite"),
        &alice,
        json!({ "user_id": mallory_id }),
    )
    .await;
    s.post(
        &format!("/_matrix/client/v3/rooms/{r}/join"),
        &mallory,
        json!({}),
    )
    .await;
    let before = s
        .send_text(&alice, &room, "t1", "hello while mallory is here")
        .await;
    s.post(
        &format!("/_matrix/client/v3/rooms/{r}/leave"),
        &mallory,
        json!({}),
    )
    .await;
    let after = s
        .send_text(&alice, &room, "t2", "s3cr3t after the leave")
        .await;
    s.put(
        &format!("/_matrix/client/v3/rooms/{r}/state/m.room.topic/"),
        &alice,
        json!({ "topic": "s3cr3t topic" }),
    )
    .await;
    let own = s
        .create_room(&mallory, json!({ "preset": "private_chat" }))
        .await;
    let o = enc(&own);
    let (b, a) = (enc(&before), enc(&after));

    let checks: Vec<(&str, String, Option<Value>, u16)> = vec![
        // Up to the leave: readable.
        (
            "GET",
            format!("/_matrix/client/v3/rooms/{r}/event/{b}"),
            None,
            200,
        ),
        (
            "GET",
            format!("/_matrix/client/v3/rooms/{r}/messages?dir=b"),
            None,
            200,
        ),
        (
            "GET",
            format!("/_matrix/client/v3/rooms/{r}/state"),
            None,
            200,
        ),
        (
            "GET",
            format!("/_matrix/client/v3/rooms/{r}/state/m.room.topic/"),
            None,
            200,
        ),
        (
            "GET",
            format!("/_matrix/client/v3/rooms/{r}/members"),
            None,
            200,
        ),
        (
            "GET",
            "/_matrix/client/v3/sync?timeout=0".to_owned(),
            None,
            200,
        ),
        (
            "POST",
            "/_matrix/client/v3/search".to_owned(),
            Some(json!({ "search_categories": { "room_events": { "search_term": "s3cr3t" } } })),
            200,
        ),
        // After the leave: hidden.
        (
            "GET",
            format!("/_matrix/client/v3/rooms/{r}/event/{a}"),
            None,
            404,
        ),
        (
            "GET",
            format!("/_matrix/client/v3/rooms/{r}/context/{a}"),
            None,
            403,
        ),
        (
            "GET",
            format!("/_matrix/client/v3/rooms/{r}/joined_members"),
            None,
            403,
        ),
        (
            "PUT",
            format!("/_matrix/client/v3/rooms/{r}/typing/{}", enc(&mallory_id)),
            Some(json!({ "typing": true, "timeout": 1000 })),
            403,
        ),
        (
            "POST",
            format!("/_matrix/client/v3/rooms/{r}/receipt/m.read/{b}"),
            Some(json!({})),
            403,
        ),
        // Alice's event named under mallory's own room.
        (
            "GET",
            format!("/_matrix/client/v3/rooms/{o}/event/{b}"),
            None,
            404,
        ),
        (
            "GET",
            format!("/_matrix/client/v3/rooms/{o}/context/{a}"),
            None,
            404,
        ),
        (
            "PUT",
            format!("/_matrix/client/v3/rooms/{o}/redact/{a}/t1"),
            Some(json!({})),
            404,
        ),
        (
            "POST",
            format!("/_matrix/client/v3/rooms/{o}/receipt/m.read/{a}"),
            Some(json!({})),
            404,
        ),
        (
            "POST",
            format!("/_matrix/client/v3/rooms/{o}/read_markers"),
            Some(json!({ "m.fully_read": after, "m.read": after })),
            404,
        ),
    ];
    let mut failures = Vec::new();
    for (method, path, body, expected) in checks {
        let (status, text) = send(
            &s,
            method,
            &path,
            Some(&mallory),
            body.map(|b| b.to_string()),
        )
        .await;
        if status != expected {
            failures.push(format!(
                "{method} {path}: expected {expected}, got {status}: {text}"
            ));
        }
        if (200..300).contains(&status) && text.contains("s3cr3t") {
            failures.push(format!(
                "{method} {path}: the answer shows what alice sent after mallory left: {text}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Alice's message was not redacted by the call under mallory's room.
    let event = s
        .get(&format!("/_matrix/client/v3/rooms/{r}/event/{a}"), &alice)
        .await;
    assert_eq!(
        event["content"]["body"], "s3cr3t after the leave",
        "{event}"
    );
}
