//! Another server's published room directory, for our clients (`GET`/`POST /publicRooms?server=`):
//! the federation `publicRooms` API, GET with `limit` and `since`, POST with the filter too. The
//! other server's own errors come back as they are (5xx as 502); a server that cannot be reached
//! is 502.

use ruma::{
    ServerName,
    api::{
        IncomingResponseExt, OutgoingRequest,
        federation::directory::{get_public_rooms, get_public_rooms_filtered},
        path_builder::SinglePath,
    },
};

use crate::{
    error::Result,
    federation::{
        request::{FederationAuth, answer_error, send_unparsed},
        unreachable,
    },
    services::Services,
};

/// Sends `request`; an answer other than 2xx is the peer's error.
async fn ask<T>(services: &Services, server: &ServerName, request: T) -> Result<T::IncomingResponse>
where
    T: OutgoingRequest<PathBuilder = SinglePath>,
    T::Authentication: FederationAuth,
{
    let response = send_unparsed(services, server, request).await?;
    let status = response.status();
    if !status.is_success() {
        let value = serde_json::from_slice(response.body()).unwrap_or(serde_json::Value::Null);
        return Err(answer_error(server, status, &value));
    }
    let (parts, body) = response.into_parts();
    T::IncomingResponse::try_from_http_response(http::Response::from_parts(parts, body.as_ref()))
        .map_err(|e| {
            unreachable(format!(
                "{server} answered an unreadable room directory: {e}"
            ))
        })
}

pub async fn get(
    services: &Services,
    server: &ServerName,
    request: get_public_rooms::v1::Request,
) -> Result<get_public_rooms::v1::Response> {
    ask(services, server, request).await
}

pub async fn post(
    services: &Services,
    server: &ServerName,
    request: get_public_rooms_filtered::v1::Request,
) -> Result<get_public_rooms_filtered::v1::Response> {
    ask(services, server, request).await
}
