//! X-Matrix request authentication: signing outgoing requests, checking incoming ones.
//! The header format and the signed object come from ruma (`ruma::api::federation::authentication`);
//! this module adds the rules of who may sign what.

use std::collections::BTreeMap;

use http::HeaderValue;
use ruma::{
    OwnedServerName, ServerName,
    api::federation::authentication::{XMatrix, XMatrixSigningInput},
    serde::Base64,
    signatures::Ed25519KeyPair,
};

use super::signing::KeyRecord;

/// Why an incoming request was not authenticated. Every case is answered with 401 M_UNAUTHORIZED.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing X-Matrix Authorization header")]
    Missing,
    #[error("malformed X-Matrix Authorization header: {0}")]
    Malformed(String),
    #[error("request is for `{0}`, not for this server")]
    WrongDestination(String),
    #[error("unknown key {key} of {origin}")]
    UnknownKey { origin: String, key: String },
    #[error("bad X-Matrix signature")]
    BadSignature,
}

/// Adds `Authorization: X-Matrix …` to an outgoing request (the body must be its final JSON).
pub fn sign_request(
    request: &mut http::Request<Vec<u8>>,
    origin: &ServerName,
    destination: &ServerName,
    keypair: &Ed25519KeyPair,
) -> Result<(), String> {
    let input = XMatrixSigningInput::new(origin.to_owned(), destination.to_owned(), keypair);
    let header = XMatrix::sign_http_request(request, input).map_err(|e| e.to_string())?;
    request
        .headers_mut()
        .insert(http::header::AUTHORIZATION, HeaderValue::from(&header));
    Ok(())
}

/// Parses the `Authorization` header and checks its destination (when given) is us.
pub fn parse_header(
    headers: &http::HeaderMap,
    our_name: &ServerName,
) -> Result<XMatrix, AuthError> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?;
    let xmatrix = XMatrix::try_from(value).map_err(|e| AuthError::Malformed(e.to_string()))?;
    if let Some(destination) = &xmatrix.destination
        && destination != our_name
    {
        return Err(AuthError::WrongDestination(destination.to_string()));
    }
    Ok(xmatrix)
}

/// Checks the signature of `request` against the origin's keys valid at `now` (ms).
/// Returns the authenticated origin.
pub fn verify_request<T: AsRef<[u8]>>(
    xmatrix: &XMatrix,
    request: &http::Request<T>,
    our_name: &ServerName,
    origin_keys: &BTreeMap<String, KeyRecord>,
    now: u64,
) -> Result<OwnedServerName, AuthError> {
    let key_id = xmatrix.key.to_string();
    let unknown = || AuthError::UnknownKey {
        origin: xmatrix.origin.to_string(),
        key: key_id.clone(),
    };
    let record = origin_keys
        .get(&key_id)
        .filter(|r| r.usable_at(now))
        .ok_or_else(unknown)?;
    let public = Base64::parse(&record.key).map_err(|_| unknown())?;
    let keys = BTreeMap::from([(
        xmatrix.origin.to_string(),
        BTreeMap::from([(key_id.clone(), public)]),
    )]);
    xmatrix
        .verify_http_request(request, our_name, &keys)
        .map_err(|_| AuthError::BadSignature)?;
    Ok(xmatrix.origin.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::federation::signing::encode_key;

    fn name(s: &str) -> &ServerName {
        s.try_into().unwrap()
    }

    fn keypair() -> Ed25519KeyPair {
        Ed25519KeyPair::from_der(&Ed25519KeyPair::generate(), "k1".to_owned()).unwrap()
    }

    fn keys_of(kp: &Ed25519KeyPair) -> BTreeMap<String, KeyRecord> {
        BTreeMap::from([(
            "ed25519:k1".to_owned(),
            KeyRecord {
                key: encode_key(&kp.public_key()),
                valid_until_ts: 10_000,
                expired_ts: None,
            },
        )])
    }

    fn signed(kp: &Ed25519KeyPair, uri: &str, body: &str) -> http::Request<Vec<u8>> {
        let mut req = http::Request::builder()
            .method("PUT")
            .uri(uri)
            .body(body.as_bytes().to_vec())
            .unwrap();
        sign_request(&mut req, name("a.test"), name("b.test"), kp).unwrap();
        req
    }

    #[test]
    fn signed_request_verifies() {
        let kp = keypair();
        let req = signed(
            &kp,
            "/_matrix/federation/v1/send/1?x=%20y",
            r#"{"pdus":[]}"#,
        );
        let header = req.headers()[http::header::AUTHORIZATION]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(header.starts_with("X-Matrix "), "{header}");
        assert!(
            header.contains("origin=a.test") && header.contains("destination=b.test"),
            "{header}"
        );
        let x = parse_header(req.headers(), name("b.test")).unwrap();
        assert_eq!(
            verify_request(&x, &req, name("b.test"), &keys_of(&kp), 5)
                .unwrap()
                .as_str(),
            "a.test"
        );
    }

    #[test]
    fn header_written_by_another_server_parses() {
        // Quoted values and a different parameter order, as other servers send them.
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static(
                r#"X-Matrix origin="a.test",destination="b.test",key="ed25519:k1",sig="ABCD""#,
            ),
        );
        let x = parse_header(&headers, name("b.test")).unwrap();
        assert_eq!(x.origin.as_str(), "a.test");
        assert_eq!(x.key.as_str(), "ed25519:k1");
    }

    #[test]
    fn missing_or_malformed_header_is_rejected() {
        let headers = http::HeaderMap::new();
        assert_eq!(
            parse_header(&headers, name("b.test")).unwrap_err(),
            AuthError::Missing
        );
        for bad in [
            "Bearer abc",
            "X-Matrix origin=a.test",
            r#"X-Matrix origin="a.test",key="ed25519:k1""#,
            r#"X-Matrix origin="not a name",key="ed25519:k1",sig="ABCD""#,
            r#"X-Matrix origin="a.test",key="ed25519:k1",sig="***""#,
        ] {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(bad).unwrap(),
            );
            assert!(
                matches!(
                    parse_header(&headers, name("b.test")),
                    Err(AuthError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn wrong_destination_is_rejected() {
        let req = signed(&keypair(), "/x", "");
        assert_eq!(
            parse_header(req.headers(), name("c.test")).unwrap_err(),
            AuthError::WrongDestination("b.test".into())
        );
    }

    #[test]
    fn tampered_request_is_rejected() {
        let kp = keypair();
        let req = signed(&kp, "/_matrix/federation/v1/send/1", r#"{"pdus":[]}"#);
        let x = parse_header(req.headers(), name("b.test")).unwrap();
        let keys = keys_of(&kp);
        // Another body, another URI, another method: each breaks the signature.
        let (parts, _) = req.clone().into_parts();
        let other_body = http::Request::from_parts(parts, br#"{"pdus":[1]}"#.to_vec());
        assert_eq!(
            verify_request(&x, &other_body, name("b.test"), &keys, 5).unwrap_err(),
            AuthError::BadSignature
        );
        let mut other_uri = req.clone();
        *other_uri.uri_mut() = "/_matrix/federation/v1/send/2".parse().unwrap();
        assert_eq!(
            verify_request(&x, &other_uri, name("b.test"), &keys, 5).unwrap_err(),
            AuthError::BadSignature
        );
        let mut other_method = req.clone();
        *other_method.method_mut() = http::Method::POST;
        assert_eq!(
            verify_request(&x, &other_method, name("b.test"), &keys, 5).unwrap_err(),
            AuthError::BadSignature
        );
        // Signed by a key of the same id but other bytes.
        let impostor = keys_of(&keypair());
        assert_eq!(
            verify_request(&x, &req, name("b.test"), &impostor, 5).unwrap_err(),
            AuthError::BadSignature
        );
    }

    #[test]
    fn unknown_or_expired_key_is_rejected() {
        let kp = keypair();
        let req = signed(&kp, "/x", "");
        let x = parse_header(req.headers(), name("b.test")).unwrap();
        let err = verify_request(&x, &req, name("b.test"), &BTreeMap::new(), 5).unwrap_err();
        assert!(matches!(err, AuthError::UnknownKey { .. }));
        // valid_until_ts is in the past.
        let err = verify_request(&x, &req, name("b.test"), &keys_of(&kp), 10_001).unwrap_err();
        assert!(matches!(err, AuthError::UnknownKey { .. }));
    }
}
