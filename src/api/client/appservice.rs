//! Endpoints only application services call with their `as_token`. Registrations are read
//! (`services::appservice`), but `as_token` authentication is not built yet (issue 10), so no
//! access token is an application service's: 403, as the spec answers a token that does not
//! belong to one.

use ruma::api::client::appservice::{request_ping, set_room_visibility};

use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
};

fn not_an_appservice() -> Error {
    Error::forbidden("The access token does not belong to an application service")
}

/// `POST /_matrix/client/v1/appservice/{appserviceId}/ping`.
pub async fn ping(
    req: Ruma<request_ping::v1::Request>,
) -> Result<RumaResponse<request_ping::v1::Response>> {
    req.user()?;
    Err(not_an_appservice())
}

/// `PUT /_matrix/client/v3/directory/list/appservice/{networkId}/{roomId}`.
pub async fn set_directory_visibility(
    req: Ruma<set_room_visibility::v3::Request>,
) -> Result<RumaResponse<set_room_visibility::v3::Response>> {
    req.user()?;
    Err(not_an_appservice())
}
