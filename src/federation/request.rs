//! Outgoing federation requests: resolve the destination, sign with X-Matrix, send over TLS.

use bytes::Bytes;
use ruma::{
    ServerName,
    api::{
        IncomingResponseExt, OutgoingRequest, OutgoingRequestExt,
        auth_scheme::{AuthScheme, NoAuthentication},
        federation::authentication::{ServerSignatures, XMatrixSigningInput},
        path_builder::SinglePath,
    },
    signatures::Ed25519KeyPair,
};

use super::{resolve::resolve, unreachable, xmatrix};
use crate::{
    error::{Error, Result},
    services::Services,
};

/// The authentication of a ruma federation endpoint, as we send it.
pub trait FederationAuth: AuthScheme {
    fn input<'a>(origin: &ServerName, destination: &ServerName, keypair: &'a Ed25519KeyPair) -> Self::Input<'a>;
}

impl FederationAuth for NoAuthentication {
    fn input<'a>(_: &ServerName, _: &ServerName, _: &'a Ed25519KeyPair) -> Self::Input<'a> {}
}

impl FederationAuth for ServerSignatures {
    fn input<'a>(origin: &ServerName, destination: &ServerName, keypair: &'a Ed25519KeyPair) -> Self::Input<'a> {
        XMatrixSigningInput::new(origin.to_owned(), destination.to_owned(), keypair)
    }
}

/// Sends a raw request (URI: path and query; body: JSON or empty) to `destination`, signed with
/// X-Matrix when `sign`. Answers of any status are returned.
pub async fn send_raw(
    services: &Services,
    destination: &ServerName,
    mut request: http::Request<Vec<u8>>,
    sign: bool,
) -> Result<http::Response<Bytes>> {
    if !services.config().federation.enabled {
        return Err(Error::forbidden("Federation is disabled on this server"));
    }
    if sign {
        let origin = services.globals.server_name();
        xmatrix::sign_request(&mut request, origin, destination, &services.globals.keypair)
            .map_err(|e| Error::internal(format!("signing a request: {e}")))?;
    }
    let dest = resolve(services, destination).await.map_err(|e| unreachable(e.to_string()))?;
    services.federation.transport.send(&dest, request).await.map_err(|e| unreachable(e.to_string()))
}

/// Sends a ruma federation request to `destination` (signed when the endpoint requires it).
pub async fn send<T>(services: &Services, destination: &ServerName, request: T) -> Result<T::IncomingResponse>
where
    T: OutgoingRequest<PathBuilder = SinglePath>,
    T::Authentication: FederationAuth,
{
    let origin = services.globals.server_name();
    let input = <T::Authentication as FederationAuth>::input(origin, destination, &services.globals.keypair);
    let http_request = request
        .try_into_http_request::<Vec<u8>>(&format!("https://{destination}"), input, ())
        .map_err(|e| Error::internal(format!("building a federation request: {e}")))?;
    let response = send_raw(services, destination, http_request, false).await?;
    let (parts, body) = response.into_parts();
    let status = parts.status;
    T::IncomingResponse::try_from_http_response(http::Response::from_parts(parts, body.as_ref()))
        .map_err(|e| unreachable(format!("{destination} answered {status}: {e}")))
}
