//! OpenID Connect Back-Channel Logout 1.0: the provider posts a signed logout token; the sessions
//! it names (the subject's, or one `sid`'s) end: their devices are logged out.
//!
//! The token is checked by the `openidconnect` crate as an ID token would be (signature by the
//! provider's keys, `iss`, `aud`, `exp`, `iat`), with `typ` `logout+jwt` allowed, then: the
//! back-channel logout event is present, there is no `nonce`, and `sub` or `sid` names a session.

use std::sync::Arc;

use openidconnect::{
    AdditionalClaims, ClaimsVerificationError, IdToken, JsonWebTokenType, Nonce,
    core::{CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::provider::Provider;
use crate::services::{Services, keys::device_list};

const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LogoutClaims {
    #[serde(default)]
    events: Map<String, Value>,
    #[serde(default)]
    sid: Option<String>,
}
impl AdditionalClaims for LogoutClaims {}

type LogoutToken = IdToken<
    LogoutClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// The (subject, sid) a logout token of `provider` names, once checked.
async fn verify(
    s: &Arc<Services>,
    provider: &Provider,
    token: &LogoutToken,
) -> Result<(String, Option<String>), String> {
    let no_nonce = |nonce: Option<&Nonce>| match nonce {
        None => Ok(()),
        Some(_) => Err("a logout token has no nonce".to_owned()),
    };
    let types = [
        "logout+jwt",
        "application/logout+jwt",
        "JWT",
        "application/jwt",
    ]
    .into_iter()
    .filter_map(|t| JsonWebTokenType::new(t.to_owned()).normalize().ok());
    let check = |refresh: bool| {
        let types = types.clone();
        async move {
            let metadata = provider.metadata(s, refresh).await?;
            let client = provider.client(&metadata, None)?;
            let verifier = client.id_token_verifier().set_allowed_jose_types(types);
            token
                .claims(&verifier, no_nonce)
                .map(|c| c.clone())
                .map_err(|e| match e {
                    ClaimsVerificationError::SignatureVerification(_) => None,
                    e => Some(format!("logout token: {e}")),
                })
                .map_err(|e| e.unwrap_or_else(|| "logout token: bad signature".to_owned()))
        }
    };
    let claims = match check(false).await {
        Ok(claims) => claims,
        Err(e) if e.ends_with("bad signature") => check(true).await?,
        Err(e) => return Err(e),
    };
    let extra = claims.additional_claims();
    if !extra.events.contains_key(LOGOUT_EVENT) {
        return Err("logout token: no back-channel logout event".to_owned());
    }
    Ok((claims.subject().to_string(), extra.sid.clone()))
}

/// Ends the sessions a logout token names; answers how many devices were logged out. Err: the
/// token is not one of a provider with `backchannel_logout_enabled` (the reason, for the 400).
pub async fn logout(s: &Arc<Services>, token: &str) -> Result<usize, String> {
    let token: LogoutToken = token
        .parse()
        .map_err(|e| format!("logout token: not a JWT ({e})"))?;
    let mut last_error = "no provider accepts back-channel logouts".to_owned();
    for provider in s
        .sso
        .providers()
        .iter()
        .filter(|p| p.config.backchannel_logout_enabled)
    {
        let (subject, sid) = match verify(s, provider, &token).await {
            Ok(found) => found,
            Err(e) => {
                last_error = e;
                continue;
            }
        };
        let idp = provider.config.idp_id.clone();
        return s
            .run(move |s| {
                let ended = s
                    .sso
                    .sessions
                    .matching(&idp, Some(&subject), sid.as_deref())?;
                let mut by_user = std::collections::BTreeMap::<_, Vec<String>>::new();
                for e in &ended {
                    by_user
                        .entry(e.user.clone())
                        .or_default()
                        .push(e.device.to_string());
                }
                for (user, devices) in &by_user {
                    let ids: Vec<&str> = devices.iter().map(String::as_str).collect();
                    device_list::remove(s, user, &ids)?;
                    tracing::info!(%user, devices = ids.len(), idp, "oidc back-channel logout");
                }
                s.sso.sessions.forget(&ended)?;
                Ok(ended.len())
            })
            .await
            .map_err(|e| e.message);
    }
    Err(last_error)
}
