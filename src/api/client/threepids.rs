//! Third-party identifiers of accounts (e-mail addresses, `services::threepids`): the user's
//! list, adding (after the address is validated) and removing one, the `requestToken` endpoints
//! that mail a validation link, and the link itself (`/_parvis/client/email/validate`). Without
//! `[email] enabled` no address is kept: the token requests are refused and the list is empty.
//! Phone numbers (msisdn) are never kept. Identity servers are not contacted: binding to one is
//! refused, unbinding answers `no-support`.

use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{Query, State},
    response::{IntoResponse, Response},
};
use http::{HeaderValue, StatusCode, header};
use ruma::api::client::account::{
    ThirdPartyIdRemovalStatus, add_3pid, bind_3pid, delete_3pid, get_3pids,
    request_3pid_management_token_via_email, request_3pid_management_token_via_msisdn,
    request_password_change_token_via_email, request_password_change_token_via_msisdn,
    request_registration_token_via_email, request_registration_token_via_msisdn, unbind_3pid,
};
use serde_json::{Value, json};

use super::{account::uia_password, sso_pages as pages};
use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
    services::{
        Services,
        threepids::{
            EMAIL, canonical_email,
            validation::{Purpose, Requested, check_client_secret},
        },
    },
    storage::Batch,
    util::now_ms,
};

type Res<T> = Result<RumaResponse<T>>;

pub const VALIDATE_PATH: &str = "/_parvis/client/email/validate";

fn denied() -> Error {
    Error::new(
        StatusCode::FORBIDDEN,
        "M_THREEPID_DENIED",
        "This server does not send e-mail, so it keeps no addresses ([email] is off)",
    )
}

fn msisdn_denied() -> Error {
    Error::new(
        StatusCode::FORBIDDEN,
        "M_THREEPID_DENIED",
        "This server does not send SMS, so it keeps no phone numbers",
    )
}

fn not_found() -> Error {
    Error::new(
        StatusCode::BAD_REQUEST,
        "M_THREEPID_NOT_FOUND",
        "No account has this address",
    )
}

fn email_on(services: &Services) -> Result<()> {
    if services.mailer.is_some() {
        Ok(())
    } else {
        Err(denied())
    }
}

pub(super) fn threepid_auth_failed() -> Error {
    Error::new(
        StatusCode::UNAUTHORIZED,
        "M_THREEPID_AUTH_FAILED",
        "The address has not been validated (open the link in the mail first), or the session expired",
    )
}

/// `GET /account/3pid`.
pub async fn list(
    State(services): State<Arc<Services>>,
    req: Ruma<get_3pids::v3::Request>,
) -> Result<axum::Json<Value>> {
    let user = req.user()?.clone();
    let found = services.run(move |s| s.threepids.of_user(&user)).await?;
    let threepids: Vec<Value> = found
        .iter()
        .map(|t| {
            json!({
                "medium": t.medium, "address": t.address,
                "added_at": t.added_at, "validated_at": t.validated_at,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "threepids": threepids })))
}

/// `POST /account/3pid/add`: user-interactive auth, then the validated session's address is
/// the account's (400 `M_THREEPID_IN_USE` when another account has it).
pub async fn add(
    State(services): State<Arc<Services>>,
    req: Ruma<add_3pid::v3::Request>,
) -> Res<add_3pid::v3::Response> {
    let user = req.user()?.clone();
    if services.mailer.is_none() {
        return Err(Error::forbidden(
            "Addresses cannot be added to accounts on this server (m.3pid_changes is off)",
        ));
    }
    let auth = req.json.as_ref().and_then(|j| j.get("auth")).cloned();
    let (sid, secret) = (req.body.sid.to_string(), req.body.client_secret.to_string());
    check_client_secret(&secret)?;
    uia_password(&services, &user, auth).await?;
    services
        .run(move |s| {
            let now = now_ms();
            let session = s
                .threepids
                .validations
                .validated(&sid, &secret, Purpose::Add, now)?
                .ok_or_else(threepid_auth_failed)?;
            let mut batch = Batch::new();
            s.threepids.validations.spend(&sid, &session, &mut batch);
            let validated_at = session.validated_at.unwrap_or(now);
            s.threepids.add(
                &user,
                &session.medium,
                &session.address,
                validated_at,
                now,
                batch,
            )?;
            tracing::info!(%user, "e-mail address added");
            Ok(add_3pid::v3::Response::new().into())
        })
        .await
}

/// `POST /account/3pid/bind`: binding at an identity server is not done by this server.
pub async fn bind(req: Ruma<bind_3pid::v3::Request>) -> Res<bind_3pid::v3::Response> {
    req.user()?;
    Err(Error::forbidden(
        "This server does not bind addresses at identity servers",
    ))
}

/// `POST /account/3pid/delete`: removes the address from the account (no identity server told).
pub async fn delete(
    State(services): State<Arc<Services>>,
    req: Ruma<delete_3pid::v3::Request>,
) -> Res<delete_3pid::v3::Response> {
    let user = req.user()?.clone();
    let medium = req.body.medium.to_string();
    let address = canonical_email(&req.body.address).unwrap_or_else(|| req.body.address.clone());
    services
        .run(move |s| {
            s.threepids.remove(&user, &medium, &address)?;
            Ok(delete_3pid::v3::Response::new(ThirdPartyIdRemovalStatus::NoSupport).into())
        })
        .await
}

pub async fn unbind(req: Ruma<unbind_3pid::v3::Request>) -> Res<unbind_3pid::v3::Response> {
    req.user()?;
    Ok(unbind_3pid::v3::Response::new(ThirdPartyIdRemovalStatus::NoSupport).into())
}

/// The three `…/email/requestToken`: checks the address for `purpose`, starts or continues the
/// validation session and mails the link (not again for the same `send_attempt`). Limited per
/// address (`email:<address>`), so nobody can flood an inbox.
async fn request_token(
    services: &Arc<Services>,
    purpose: Purpose,
    client_secret: String,
    email: String,
    send_attempt: u64,
    next_link: Option<String>,
) -> Result<String> {
    email_on(services)?;
    check_client_secret(&client_secret)?;
    let address = canonical_email(&email)
        .ok_or_else(|| Error::invalid_param("email is not an e-mail address"))?;
    if let Some(link) = &next_link
        && !(link.starts_with("https://") || link.starts_with("http://"))
    {
        return Err(Error::invalid_param("next_link must be an http(s) URL"));
    }
    services.rate_limiter.check(&format!("email:{address}"))?;
    let lifetime = services.config().email.validation_token_lifetime.0;
    let requested = {
        let (address, client_secret) = (address.clone(), client_secret.clone());
        services
            .run(move |s| {
                let owner = s.threepids.owner(EMAIL, &address)?;
                match (purpose, owner) {
                    (Purpose::Registration | Purpose::Add, Some(_)) => {
                        return Err(crate::services::threepids::in_use());
                    }
                    (Purpose::PasswordReset, None) => return Err(not_found()),
                    _ => {}
                }
                s.threepids.validations.request(
                    &client_secret,
                    EMAIL,
                    &address,
                    send_attempt,
                    purpose,
                    next_link,
                    lifetime,
                    now_ms(),
                )
            })
            .await?
    };
    let (sid, token) = match requested {
        Requested::Again { sid } => return Ok(sid),
        Requested::Send { sid, token } => (sid, token),
    };
    let mailer = services.mailer.as_ref().ok_or_else(denied)?;
    let link = {
        let base = services
            .config()
            .listen
            .public_base_url
            .as_deref()
            .unwrap_or_default();
        let mut url = openidconnect::url::Url::parse(&format!(
            "{}{VALIDATE_PATH}",
            base.trim_end_matches('/')
        ))
        .map_err(|e| Error::internal(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("sid", &sid)
            .append_pair("client_secret", &client_secret)
            .append_pair("token", &token);
        url.to_string()
    };
    let app = &mailer.app_name;
    let (subject, text) = match purpose {
        Purpose::Registration => (
            format!("[{app}] Validate your e-mail address"),
            format!(
                "To finish creating your {app} account, open this link:\n\n{link}\n\nIf you did not ask for this, ignore this mail.\n"
            ),
        ),
        Purpose::Add => (
            format!("[{app}] Validate your e-mail address"),
            format!(
                "To add this address to your {app} account, open this link:\n\n{link}\n\nIf you did not ask for this, ignore this mail.\n"
            ),
        ),
        Purpose::PasswordReset => (
            format!("[{app}] Password reset"),
            format!(
                "To reset the password of your {app} account, open this link:\n\n{link}\n\nIf you did not ask for this, ignore this mail: your password does not change.\n"
            ),
        ),
    };
    if let Err(e) = mailer.send(&address, &subject, text).await {
        tracing::warn!(error = %e, "e-mail: cannot send a validation link");
        return Err(Error::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "M_UNKNOWN",
            "The mail could not be sent; try again later",
        ));
    }
    Ok(sid)
}

fn session_id(sid: String) -> Result<ruma::OwnedSessionId> {
    sid.try_into()
        .map_err(|_| Error::internal("a validation session id is not a session id"))
}

pub async fn registration_email(
    State(services): State<Arc<Services>>,
    req: Ruma<request_registration_token_via_email::v3::Request>,
) -> Res<request_registration_token_via_email::v3::Response> {
    if !services.config().registration.enabled {
        return Err(Error::forbidden("Registration is disabled"));
    }
    let b = req.body;
    let sid = request_token(
        &services,
        Purpose::Registration,
        b.client_secret.to_string(),
        b.email,
        b.send_attempt.into(),
        b.next_link,
    )
    .await?;
    Ok(request_registration_token_via_email::v3::Response::new(session_id(sid)?).into())
}

pub async fn management_email(
    State(services): State<Arc<Services>>,
    req: Ruma<request_3pid_management_token_via_email::v3::Request>,
) -> Res<request_3pid_management_token_via_email::v3::Response> {
    let b = req.body;
    let sid = request_token(
        &services,
        Purpose::Add,
        b.client_secret.to_string(),
        b.email,
        b.send_attempt.into(),
        b.next_link,
    )
    .await?;
    Ok(request_3pid_management_token_via_email::v3::Response::new(session_id(sid)?).into())
}

pub async fn password_email(
    State(services): State<Arc<Services>>,
    req: Ruma<request_password_change_token_via_email::v3::Request>,
) -> Res<request_password_change_token_via_email::v3::Response> {
    if !services.config().password_config.enabled {
        return Err(Error::forbidden(
            "Password changes are disabled on this server",
        ));
    }
    // Without e-mail no account has an address.
    if services.mailer.is_none() {
        return Err(not_found());
    }
    let b = req.body;
    let sid = request_token(
        &services,
        Purpose::PasswordReset,
        b.client_secret.to_string(),
        b.email,
        b.send_attempt.into(),
        b.next_link,
    )
    .await?;
    Ok(request_password_change_token_via_email::v3::Response::new(session_id(sid)?).into())
}

pub async fn registration_msisdn(
    _: Ruma<request_registration_token_via_msisdn::v3::Request>,
) -> Res<request_registration_token_via_msisdn::v3::Response> {
    Err(msisdn_denied())
}

pub async fn management_msisdn(
    _: Ruma<request_3pid_management_token_via_msisdn::v3::Request>,
) -> Res<request_3pid_management_token_via_msisdn::v3::Response> {
    Err(msisdn_denied())
}

/// A password reset by SMS: no account has a phone number.
pub async fn password_msisdn(
    _: Ruma<request_password_change_token_via_msisdn::v3::Request>,
) -> Res<request_password_change_token_via_msisdn::v3::Response> {
    Err(not_found())
}

/// `GET /_parvis/client/email/validate?sid=&client_secret=&token=`: the link in the mail. The
/// session is validated; the browser goes on to the client's `next_link`, or gets a page saying
/// so. Opening it again changes nothing.
pub async fn validate(
    State(services): State<Arc<Services>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if services.mailer.is_none() {
        return denied().into_response();
    }
    let get = |k: &str| query.get(k).cloned().unwrap_or_default();
    let (sid, secret, token) = (get("sid"), get("client_secret"), get("token"));
    let lifetime = services.config().email.validation_token_lifetime.0;
    let found = services
        .run(move |s| {
            s.threepids
                .validations
                .validate(&sid, &secret, &token, lifetime, now_ms())
        })
        .await;
    match found {
        Ok(Some(session)) => match session.next_link {
            Some(next) => {
                let mut response = StatusCode::FOUND.into_response();
                if let Ok(location) = HeaderValue::from_str(&next) {
                    response.headers_mut().insert(header::LOCATION, location);
                }
                response
            }
            None => pages::page(
                StatusCode::OK,
                "Address validated",
                "<p>Your e-mail address is validated. Go back to your app to continue.</p>",
            ),
        },
        Ok(None) => pages::page(
            StatusCode::BAD_REQUEST,
            "Link not valid",
            "<p class=\"error\">This link expired, or a newer mail replaced it. Ask your app to send a new one.</p>",
        ),
        Err(e) => pages::page(
            e.status,
            "Link not valid",
            "<p class=\"error\">The server could not check this link; try again later.</p>",
        ),
    }
}
