//! Two servers in one process federate over TLS on loopback: keys, the notary, X-Matrix.

mod common;

use std::{path::Path, sync::Arc};

use common::{TestServer, enc};
use http::StatusCode;
use parvis::{
    federation::{
        now_ms, own_keys, remote_keys,
        request::send_raw,
        resolve::resolve,
        signing::{encode_key, signature_valid, verify_key_document},
        xmatrix::sign_request,
    },
    services::Services,
};
use ruma::{
    CanonicalJsonObject, OwnedServerName, ServerName,
    signatures::to_canonical_json_string_for_signing,
};
use serde_json::{Value, json};

async fn start(data: &Path) -> (TestServer, OwnedServerName) {
    common::federation::start(data).await
}

fn services(server: &TestServer) -> &Arc<Services> {
    &server.server.as_ref().unwrap().services
}

/// Sends `request` from `from` to `to` as it is (no signing added); returns status and JSON.
async fn send_as_is(
    from: &TestServer,
    to: &ServerName,
    request: http::Request<Vec<u8>>,
) -> (StatusCode, Value) {
    let services = services(from);
    let dest = resolve(services, to).await.unwrap();
    let response = services
        .federation
        .transport
        .send(&dest, request)
        .await
        .unwrap();
    (
        response.status(),
        serde_json::from_slice(response.body()).unwrap_or(Value::Null),
    )
}

fn get(uri: &str) -> http::Request<Vec<u8>> {
    http::Request::get(uri).body(Vec::new()).unwrap()
}

fn signed_get(from: &TestServer, to: &ServerName, uri: &str) -> http::Request<Vec<u8>> {
    let s = services(from);
    let mut request = get(uri);
    sign_request(
        &mut request,
        s.globals.server_name(),
        to,
        &s.globals.keypair,
    )
    .unwrap();
    request
}

/// 401 M_UNAUTHORIZED, for the reason `why` (a part of the error message).
fn assert_unauthorized((status, body): (StatusCode, Value), why: &str) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {body}");
    assert_eq!(body["errcode"], "M_UNAUTHORIZED", "{why}: {body}");
    assert!(
        body["error"].as_str().unwrap().contains(why),
        "{why}: {body}"
    );
}

#[tokio::test]
async fn servers_fetch_keys_act_as_notary_and_check_request_signatures() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_name) = start(dir_a.path()).await;
    let (b, b_name) = start(dir_b.path()).await;
    let (sa, sb) = (services(&a).clone(), services(&b).clone());
    assert_eq!(
        a.server
            .as_ref()
            .unwrap()
            .federation_addr
            .unwrap()
            .to_string(),
        a_name.as_str()
    );
    assert_eq!(
        sa.federation.well_known_server(sa.config()),
        a_name.as_str()
    );

    // B serves its keys over TLS, self-signed.
    let response = send_raw(&sa, &b_name, get("/_matrix/key/v2/server"), false)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let doc: CanonicalJsonObject = serde_json::from_slice(response.body()).unwrap();
    let b_key_id = own_keys::current_key_id(&sb.globals.keypair);
    let b_key = encode_key(&sb.globals.keypair.public_key());
    let verified = verify_key_document(&doc, &b_name).unwrap();
    assert_eq!(verified.keys[&b_key_id].key, b_key);
    assert!(verified.valid_until_ts > now_ms() + 24 * 3_600_000);
    // The deprecated form with a key id answers the same document.
    let response = send_raw(
        &sa,
        &b_name,
        get(&format!("/_matrix/key/v2/server/{b_key_id}")),
        false,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // A fetches, checks and caches B's keys.
    let keys = remote_keys::verify_keys_for(&sa, &b_name, now_ms())
        .await
        .unwrap();
    assert_eq!(keys[&b_key_id].key, b_key);
    let name = b_name.clone();
    let cached = sa
        .run(move |s| s.federation.cached_keys(&name))
        .await
        .unwrap();
    assert_eq!(cached[&b_key_id].key, b_key);
    // Keys are not valid for signatures made after their valid_until_ts.
    let later = remote_keys::verify_keys_for(&sa, &b_name, now_ms() + 30 * 24 * 3_600_000)
        .await
        .unwrap();
    assert!(later.is_empty(), "{later:?}");

    // A's notary answers for B: B's document, signed by B and by A.
    let uri = format!("/_matrix/key/v2/query/{}", enc(b_name.as_str()));
    let (status, body) = send_as_is(&b, &a_name, get(&uri)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let docs = body["server_keys"].as_array().unwrap();
    assert_eq!(docs.len(), 1, "{body}");
    let doc: CanonicalJsonObject = serde_json::from_value(docs[0].clone()).unwrap();
    assert_eq!(
        verify_key_document(&doc, &b_name).unwrap().keys[&b_key_id].key,
        b_key
    );
    let a_key_id = own_keys::current_key_id(&sa.globals.keypair);
    let a_sig = body["server_keys"][0]["signatures"][a_name.as_str()][&a_key_id]
        .as_str()
        .unwrap();
    let canonical = to_canonical_json_string_for_signing(&doc).unwrap();
    assert!(signature_valid(
        &encode_key(&sa.globals.keypair.public_key()),
        a_sig,
        canonical.as_bytes()
    ));
    // The batch form, with a server it cannot reach (answered with nothing for it).
    let query = json!({ "server_keys": { b_name.as_str(): {}, "127.0.0.1:1": {} } });
    let mut request = http::Request::post("/_matrix/key/v2/query")
        .body(serde_json::to_vec(&query).unwrap())
        .unwrap();
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        "application/json".parse().unwrap(),
    );
    let (status, body) = send_as_is(&b, &a_name, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["server_keys"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["server_keys"][0]["server_name"], b_name.as_str());

    // A signed request from A to B is accepted (B fetches A's keys to check it).
    let (alice, _) = b.register("alice").await;
    let uri = format!(
        "/_matrix/federation/v1/query/profile?user_id={}",
        enc(&alice)
    );
    let (status, body) = send_as_is(&a, &b_name, signed_get(&a, &b_name, &uri)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let response = send_raw(&sa, &b_name, get(&uri), true).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Tampered after signing: another URI under the same signature.
    let mut tampered = signed_get(&a, &b_name, &uri);
    *tampered.uri_mut() = format!(
        "/_matrix/federation/v1/query/profile?user_id={}&field=displayname",
        enc(&alice)
    )
    .parse()
    .unwrap();
    assert_unauthorized(
        send_as_is(&a, &b_name, tampered).await,
        "bad X-Matrix signature",
    );

    // Public routes over TLS; unknown ones are M_UNRECOGNIZED.
    let (status, body) = send_as_is(&a, &b_name, get("/_matrix/federation/v1/version")).await;
    assert_eq!(
        (status, body["server"]["name"].as_str()),
        (StatusCode::OK, Some("Parvis"))
    );
    // Health, as on the client listener.
    let (status, _) = send_as_is(&a, &b_name, get("/health")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send_as_is(&a, &b_name, get("/_matrix/federation/v1/nothing")).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::NOT_FOUND, Some("M_UNRECOGNIZED"))
    );

    a.stop().await;
    b.stop().await;
}

/// Two servers, a user on B and the URI of an authenticated route on B.
struct Pair {
    a: TestServer,
    a_name: OwnedServerName,
    b: TestServer,
    b_name: OwnedServerName,
    uri: String,
    key_id: String,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Pair {
    async fn start() -> Self {
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, a_name) = start(dir_a.path()).await;
        let (b, b_name) = start(dir_b.path()).await;
        let (alice, _) = b.register("alice").await;
        let uri = format!(
            "/_matrix/federation/v1/query/profile?user_id={}",
            enc(&alice)
        );
        let key_id = own_keys::current_key_id(&services(&a).globals.keypair);
        Self {
            a,
            a_name,
            b,
            b_name,
            uri,
            key_id,
            _dirs: (dir_a, dir_b),
        }
    }

    /// The profile request from A to B with this Authorization header.
    async fn send_with_header(&self, value: String) -> (StatusCode, Value) {
        let mut request = get(&self.uri);
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value.parse().unwrap());
        send_as_is(&self.a, &self.b_name, request).await
    }

    /// Checks that the correctly signed request still passes, then stops both servers.
    async fn finish(self) {
        let (status, body) = send_as_is(
            &self.a,
            &self.b_name,
            signed_get(&self.a, &self.b_name, &self.uri),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        self.a.stop().await;
        self.b.stop().await;
    }
}

#[tokio::test]
async fn request_without_x_matrix_is_rejected() {
    let p = Pair::start().await;
    assert_unauthorized(
        send_as_is(&p.a, &p.b_name, get(&p.uri)).await,
        "missing X-Matrix",
    );
    assert_unauthorized(
        p.send_with_header("Bearer abc".into()).await,
        "malformed X-Matrix",
    );
    p.finish().await;
}

#[tokio::test]
async fn malformed_x_matrix_header_is_rejected() {
    let p = Pair::start().await;
    let (a_name, key_id) = (&p.a_name, &p.key_id);
    assert_unauthorized(
        p.send_with_header(format!(r#"X-Matrix origin="{a_name}",key="{key_id}""#))
            .await,
        "malformed X-Matrix",
    );
    assert_unauthorized(
        p.send_with_header(format!(
            r#"X-Matrix origin="{a_name}",key="{key_id}",sig="***""#
        ))
        .await,
        "malformed X-Matrix",
    );
    p.finish().await;
}

#[tokio::test]
async fn x_matrix_for_another_destination_is_rejected() {
    let p = Pair::start().await;
    let other: OwnedServerName = "127.0.0.1:1".try_into().unwrap();
    assert_unauthorized(
        send_as_is(&p.a, &p.b_name, signed_get(&p.a, &other, &p.uri)).await,
        "not for this server",
    );
    p.finish().await;
}

#[tokio::test]
async fn bad_x_matrix_signature_is_rejected() {
    let p = Pair::start().await;
    let (a_name, b_name, key_id) = (&p.a_name, &p.b_name, &p.key_id);
    let bogus = encode_key(&[0u8; 64]);
    assert_unauthorized(
        p.send_with_header(format!(
            r#"X-Matrix origin="{a_name}",destination="{b_name}",key="{key_id}",sig="{bogus}""#
        ))
        .await,
        "bad X-Matrix signature",
    );
    // A signature of A over another request.
    let other = signed_get(
        &p.a,
        &p.b_name,
        "/_matrix/federation/v1/query/profile?user_id=%40bob%3Ax",
    );
    let header = other.headers()[http::header::AUTHORIZATION]
        .to_str()
        .unwrap()
        .to_owned();
    assert_unauthorized(p.send_with_header(header).await, "bad X-Matrix signature");
    p.finish().await;
}

#[tokio::test]
async fn x_matrix_with_an_unknown_key_is_rejected() {
    let p = Pair::start().await;
    let mut request = signed_get(&p.a, &p.b_name, &p.uri);
    let header = request.headers()[http::header::AUTHORIZATION]
        .to_str()
        .unwrap()
        .replace(&p.key_id, "ed25519:nope");
    request
        .headers_mut()
        .insert(http::header::AUTHORIZATION, header.parse().unwrap());
    assert_unauthorized(
        send_as_is(&p.a, &p.b_name, request).await,
        "unknown key ed25519:nope",
    );
    // An origin whose keys cannot be fetched.
    let (b_name, key_id) = (&p.b_name, &p.key_id);
    let bogus = encode_key(&[0u8; 64]);
    assert_unauthorized(
        p.send_with_header(format!(
            r#"X-Matrix origin="127.0.0.1:1",destination="{b_name}",key="{key_id}",sig="{bogus}""#
        ))
        .await,
        "unknown key",
    );
    p.finish().await;
}

#[tokio::test]
async fn certificates_are_verified_against_the_configured_ca_files() {
    let (dir_a, dir_b, dir_c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (b, b_name) = start(dir_b.path()).await;
    // A trusts B's generated certificate; C verifies with the default roots only.
    let with_verification = |data: &Path, ca_files: Vec<std::path::PathBuf>| {
        let mut config = common::config(data);
        config.federation.verify_certificates = true;
        config.federation.ca_files = ca_files;
        config
    };
    let a = TestServer::start_with(with_verification(
        dir_a.path(),
        vec![dir_b.path().join("federation-tls/cert.pem")],
    ))
    .await;
    let c = TestServer::start_with(with_verification(dir_c.path(), vec![])).await;

    let response = send_raw(services(&a), &b_name, get("/_matrix/key/v2/server"), false)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The TLS failure is in the log; the error says only that B could not be reached.
    let err = send_raw(services(&c), &b_name, get("/_matrix/key/v2/server"), false)
        .await
        .unwrap_err();
    assert_eq!(
        (err.status, err.message.clone()),
        (
            StatusCode::BAD_GATEWAY,
            format!("{b_name} could not be reached")
        ),
        "{err}"
    );

    a.stop().await;
    b.stop().await;
    c.stop().await;
}
