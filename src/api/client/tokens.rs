//! The validity of a registration token (a check that needs no account).

use std::sync::Arc;

use axum::extract::State;
use ruma::api::client::account::check_registration_token_validity;

use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
    services::Services,
};

/// `GET /_matrix/client/v1/register/m.login.registration_token/validity`: whether a token would
/// be accepted by registration (`[registration] tokens`, or an admin's token with uses left and
/// not expired); 403 when registration is closed.
/// Rate-limited like registration, so tokens cannot be guessed quickly.
pub async fn registration_token_validity(
    State(services): State<Arc<Services>>,
    req: Ruma<check_registration_token_validity::v1::Request>,
) -> Result<RumaResponse<check_registration_token_validity::v1::Response>> {
    let config = &services.config().registration;
    if !config.enabled {
        return Err(Error::forbidden(
            "Registration is not enabled on this server",
        ));
    }
    let token = req.body.token;
    let valid = config.tokens.iter().any(|t| *t == token)
        || services
            .run(move |s| s.registration_tokens.is_usable(&token))
            .await?;
    Ok(check_registration_token_validity::v1::Response::new(valid).into())
}
