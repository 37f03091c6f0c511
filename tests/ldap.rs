//! LDAP sign-in (issue 12) against a real OpenLDAP (`slapd` on loopback, `tests/common/ldap.rs`):
//! search-then-bind with a service account over StartTLS, direct bind over ldaps, a group that
//! must list the user, the account made on first login, UIA password stages, a departed user
//! locked or deactivated by the departure check, and the attacks: an empty password (an
//! anonymous bind), a wildcard in the login name, a directory whose certificate is not trusted.

mod common;

use common::{
    TestServer, enc,
    federation::eventually,
    ldap::{BASE, GROUP, SERVICE_DN, SERVICE_PASSWORD, Slapd},
    password_login,
};
use parvis::{
    config::Config,
    services::{ldap::OnDeparture, retention::lifetime::Lifetime},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn login(server: &TestServer, user: &str, password: &str) -> (StatusCode, Value) {
    server.login(password_login(user, password)).await
}

/// Search-then-bind through the service account, StartTLS with the test CA, the Matrix group.
fn search_config(config: &mut Config, slapd: &Slapd) {
    let ldap = &mut config.ldap;
    ldap.enabled = true;
    ldap.uri = slapd.ldap_uri.clone();
    ldap.start_tls = true;
    ldap.ca_files = vec![slapd.ca_file.clone()];
    ldap.base = BASE.to_owned();
    ldap.bind_dn = Some(SERVICE_DN.to_owned());
    ldap.bind_password = Some(SERVICE_PASSWORD.to_owned());
    ldap.attributes.name = "displayName".to_owned();
    ldap.filter = Some("(objectClass=inetOrgPerson)".to_owned());
    ldap.group_dn = Some(GROUP.to_owned());
}

#[tokio::test]
async fn directory_users_log_in_and_get_an_account_on_first_login() {
    let slapd = Slapd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    search_config(&mut config, &slapd);
    let (server, root) = TestServer::start_with_admin(config).await;

    let (status, alice) = login(&server, "alice", "alice-directory-pw").await;
    assert_eq!(status, StatusCode::OK, "{alice}");
    assert_eq!(alice["user_id"], "@alice:test.local");
    let alice_token = alice["access_token"].as_str().unwrap().to_owned();
    let admin_view = server
        .get(
            &format!("/_synapse/admin/v2/users/{}", enc("@alice:test.local")),
            &root,
        )
        .await;
    assert_eq!(admin_view["displayname"], "Alice Liddell", "{admin_view}");
    assert_eq!(
        admin_view["external_ids"],
        json!([{ "auth_provider": "ldap", "external_id": "alice" }])
    );
    // Logging in again (any spelling) finds the same account.
    let (status, again) = login(&server, "@Alice:test.local", "alice-directory-pw").await;
    assert_eq!(
        (status, &again["user_id"]),
        (StatusCode::OK, &json!("@alice:test.local"))
    );

    // Refused: a wrong password, an empty one (an anonymous bind would succeed), a wildcard
    // (an unescaped filter would find alice), a user outside the group, a stranger.
    for (user, password) in [
        ("alice", "wrong"),
        ("alice", ""),
        ("ali*", "alice-directory-pw"),
        ("*", "alice-directory-pw"),
        ("carol", "carol-directory-pw"),
        ("mallory", "anything"),
    ] {
        let (status, body) = login(&server, user, password).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{user}/{password}: {body}");
    }
    let (status, _) = server
        .call(
            Method::GET,
            "/_matrix/client/v3/register/available?username=carol",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "no account was made for carol");

    // UIA password stages of a directory user check the directory.
    let devices = server.get("/_matrix/client/v3/devices", &alice_token).await;
    let other = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap().to_owned())
        .find(|d| *d != alice["device_id"])
        .unwrap();
    let path = format!("/_matrix/client/v3/devices/{}", enc(&other));
    let (status, uia) = server
        .call(Method::DELETE, &path, Some(&alice_token), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{uia}");
    let mut auth = password_login("@alice:test.local", "wrong");
    auth["session"] = uia["session"].clone();
    let (status, _) = server
        .call(
            Method::DELETE,
            &path,
            Some(&alice_token),
            Some(json!({ "auth": auth.clone() })),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    auth["password"] = json!("alice-directory-pw");
    let (status, body) = server
        .call(
            Method::DELETE,
            &path,
            Some(&alice_token),
            Some(json!({ "auth": auth })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn users_who_leave_the_directory_are_locked_out() {
    let slapd = Slapd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    search_config(&mut config, &slapd);
    config.ldap.departure_check_interval = Some(Lifetime(1_000));
    let (server, root) = TestServer::start_with_admin(config).await;
    let (_, alice) = login(&server, "alice", "alice-directory-pw").await;
    let alice = alice["access_token"].as_str().unwrap().to_owned();

    // Out of the Matrix group: no new login, and the check locks the open session.
    slapd.remove_from_group("alice").await;
    let (status, _) = login(&server, "alice", "alice-directory-pw").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    eventually("the departure check locks alice", || async {
        let (status, body) = server.whoami(&alice).await;
        (status == StatusCode::UNAUTHORIZED && body["errcode"] == "M_USER_LOCKED").then_some(())
    })
    .await;
    let lock = format!("/_matrix/client/v1/admin/lock/{}", enc("@alice:test.local"));
    assert_eq!(server.get(&lock, &root).await, json!({ "locked": true }));
    // Local accounts are not the directory's business.
    assert_eq!(server.whoami(&root).await.0, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn departed_users_can_be_deactivated_and_direct_bind_works_over_ldaps() {
    let slapd = Slapd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    let ldap = &mut config.ldap;
    ldap.enabled = true;
    ldap.uri = slapd.ldaps_uri.clone();
    ldap.ca_files = vec![slapd.ca_file.clone()];
    ldap.bind_dn_template = Some(format!("uid={{localpart}},{BASE}"));
    // The departure check searches with the service account.
    ldap.bind_dn = Some(SERVICE_DN.to_owned());
    ldap.bind_password = Some(SERVICE_PASSWORD.to_owned());
    ldap.departure_check_interval = Some(Lifetime(1_000));
    ldap.on_departure = OnDeparture::Deactivate;
    let server = TestServer::start_with(config.clone()).await;

    let (status, bob) = login(&server, "bob", "bob-directory-pw").await;
    assert_eq!(status, StatusCode::OK, "{bob}");
    let bob_token = bob["access_token"].as_str().unwrap().to_owned();
    let (status, _) = login(&server, "bob", "wrong").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = login(&server, "bob", "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let room = server
        .create_room(&bob_token, json!({ "preset": "public_chat" }))
        .await;
    let (_, alice) = login(&server, "alice", "alice-directory-pw").await;
    let alice = alice["access_token"].as_str().unwrap().to_owned();
    server
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            &alice,
            json!({}),
        )
        .await;
    server.stop().await;

    // A directory whose certificate is not trusted is not talked to: its users cannot log in.
    let mut untrusted = config.clone();
    untrusted.ldap.ca_files.clear();
    untrusted.ldap.departure_check_interval = None;
    let server = TestServer::start_with(untrusted).await;
    let (status, body) = login(&server, "bob", "bob-directory-pw").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    server.stop().await;

    // Bob's entry is deleted: the check deactivates his account (he leaves his rooms).
    let server = TestServer::start_with(config).await;
    slapd.delete_user("bob").await;
    eventually("the departure check deactivates bob", || async {
        let (status, body) = login(&server, "bob", "bob-directory-pw").await;
        let whoami = server.whoami(&bob_token).await;
        (status == StatusCode::FORBIDDEN
            && body["errcode"] == "M_FORBIDDEN"
            && whoami.1["errcode"] == "M_UNKNOWN_TOKEN")
            .then_some(())
    })
    .await;
    let members = server
        .get(
            &format!("/_matrix/client/v3/rooms/{}/members", enc(&room)),
            &alice,
        )
        .await;
    let bob_member = members["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["state_key"] == "@bob:test.local")
        .cloned()
        .unwrap();
    assert_eq!(bob_member["content"]["membership"], "leave", "{bob_member}");
    server.stop().await;
}
