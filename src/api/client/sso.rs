//! Single sign-on with OpenID Connect (spec/auth.md): `GET /login/sso/redirect[/{idpId}]`, the
//! provider's callback `/_parvis/client/oidc/callback`, the new-account page
//! `/_parvis/client/sso/new_account`, the user-interactive auth fallback
//! `/auth/m.login.sso/fallback/web` and back-channel logout
//! `/_parvis/client/oidc/backchannel_logout`. The browser carries the state of a sign-in in
//! signed cookies (`services::sso::signed`); the work with the provider is in `services::sso`.

use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{Path, Query, State},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use ruma::{OwnedUserId, UserId};
use serde::{Deserialize, Serialize};

use super::{
    account::{not_reserved, validate_localpart},
    sso_pages as pages,
};
use crate::{
    error::{Error, Result},
    services::{
        Services,
        sso::{
            claims::{self, Identity},
            provider::AuthRequest,
            sessions::ProviderSession,
        },
    },
    util::now_ms,
};

const FLOW_COOKIE: &str = "parvis_oidc";
const FLOW_PATH: &str = "/_parvis/client/oidc";
const NEW_ACCOUNT_COOKIE: &str = "parvis_sso_new_account";
const NEW_ACCOUNT_PATH: &str = "/_parvis/client/sso";
pub const CALLBACK: &str = "/_parvis/client/oidc/callback";

/// Why the browser went to the provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Purpose {
    /// Sign in, then give `redirect_url` a login token.
    Login { redirect_url: String },
    /// Complete `m.login.sso` of a user-interactive auth session of `user`.
    Confirm { session: String, user: OwnedUserId },
}

/// The flow cookie: which provider, what to check at the callback, what for.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Flow {
    idp_id: String,
    auth: AuthRequest,
    purpose: Purpose,
}

/// A first sign-in waiting for the user to confirm the new account.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NewAccount {
    idp_id: String,
    identity: Identity,
    session: ProviderSession,
    redirect_url: String,
    /// The user chooses the username: the claim gave none, `confirm_localpart`, or the proposed
    /// one is taken.
    choose_username: bool,
}

/// Whether `user` can confirm user-interactive auth with single sign-on: linked to a configured
/// provider.
pub fn confirmable_by_sso(s: &Services, user: &UserId) -> Result<bool> {
    if !s.sso.enabled() {
        return Ok(false);
    }
    Ok(s.external_ids
        .of_user(user)?
        .iter()
        .any(|link| s.sso.provider(&link.auth_provider).is_some()))
}

fn enc(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn public_url(s: &Services, path: &str) -> String {
    let base = s
        .config()
        .listen
        .public_base_url
        .as_deref()
        .unwrap_or_default();
    format!("{}{path}", base.trim_end_matches('/'))
}

/// Adds the cookie `name` to `response`: HttpOnly, SameSite=Lax, Secure behind https.
fn set_cookie(
    s: &Services,
    response: &mut Response,
    name: &str,
    value: &str,
    path: &str,
    max_age_s: u64,
) {
    let secure = s
        .config()
        .listen
        .public_base_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={max_age_s}; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    );
    if let Ok(value) = HeaderValue::from_str(&text) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Adds the cookie `name` carrying `value` signed for `purpose`, both living `[sso] flow_timeout`.
fn set_signed_cookie<T: Serialize>(
    s: &Services,
    response: &mut Response,
    (name, path): (&str, &str),
    purpose: &str,
    value: &T,
) {
    let lifetime = s.config().sso.flow_timeout.0;
    let signed = s
        .sso
        .signer
        .sign(purpose, value, now_ms().saturating_add(lifetime));
    set_cookie(s, response, name, &signed, path, lifetime / 1000);
}

fn read_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The answer of the browser-facing routes when no provider is configured.
fn disabled(s: &Services) -> Option<Response> {
    sso_enabled(s).err().map(IntoResponse::into_response)
}

fn sso_enabled(s: &Services) -> Result<()> {
    if s.sso.enabled() {
        Ok(())
    } else {
        Err(Error::unrecognized(
            "Single sign-on is not enabled on this server",
        ))
    }
}

/// The client's `redirectUrl`: required, an absolute URL.
fn client_redirect(query: &HashMap<String, String>) -> Result<String> {
    let url = query
        .get("redirectUrl")
        .ok_or_else(|| Error::missing_param("redirectUrl is required"))?;
    // http(s) with a host, or an app's own scheme (`im.example.app:/login`).
    let web = |u: &openidconnect::url::Url| u.scheme() == "http" || u.scheme() == "https";
    match openidconnect::url::Url::parse(url) {
        Ok(parsed) if parsed.has_host() || !web(&parsed) => Ok(url.clone()),
        _ => Err(Error::invalid_param("redirectUrl is not an absolute URL")),
    }
}

/// `GET /login/sso/redirect`: one provider: straight to it; several: a page to choose.
pub async fn redirect_any(
    State(services): State<Arc<Services>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response> {
    sso_enabled(&services)?;
    let redirect_url = client_redirect(&query)?;
    let providers = services.sso.providers();
    if let [only] = providers {
        let purpose = Purpose::Login { redirect_url };
        return Ok(start(&services, &only.config.idp_id, purpose).await);
    }
    let choices: Vec<(String, String)> = providers
        .iter()
        .map(|p| {
            (
                p.config.idp_name.clone(),
                format!(
                    "/_matrix/client/v3/login/sso/redirect/{}?redirectUrl={}",
                    p.config.idp_id,
                    enc(&redirect_url)
                ),
            )
        })
        .collect();
    Ok(pages::picker(&choices))
}

/// `GET /login/sso/redirect/{idpId}`.
pub async fn redirect_to(
    State(services): State<Arc<Services>>,
    Path(idp_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response> {
    sso_enabled(&services)?;
    let redirect_url = client_redirect(&query)?;
    if services.sso.provider(&idp_id).is_none() {
        return Err(Error::not_found("Unknown identity provider"));
    }
    Ok(start(&services, &idp_id, Purpose::Login { redirect_url }).await)
}

/// Sends the browser to the provider, with the flow cookie.
async fn start(services: &Arc<Services>, idp_id: &str, purpose: Purpose) -> Response {
    let Some(provider) = services.sso.provider(idp_id) else {
        return pages::error(StatusCode::NOT_FOUND, "Unknown identity provider");
    };
    let callback = public_url(services, CALLBACK);
    let (url, auth) = match provider.authorize(services, &callback).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(idp = idp_id, error = %e, "oidc: cannot start a sign-in");
            return pages::error(
                StatusCode::BAD_GATEWAY,
                "The identity provider cannot be reached. Try again later.",
            );
        }
    };
    let flow = Flow {
        idp_id: idp_id.to_owned(),
        auth,
        purpose,
    };
    let mut response = redirect(&url);
    set_signed_cookie(
        services,
        &mut response,
        (FLOW_COOKIE, FLOW_PATH),
        "oidc-flow",
        &flow,
    );
    response
}

/// `GET /_parvis/client/oidc/callback`: the provider sends the browser back with a code (or an
/// error). The state must be the flow cookie's; the ID token is checked; then the account.
pub async fn callback(
    State(services): State<Arc<Services>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(off) = disabled(&services) {
        return off;
    }
    let Some(flow) = read_cookie(&headers, FLOW_COOKIE)
        .and_then(|c| services.sso.signer.open::<Flow>("oidc-flow", c, now_ms()))
    else {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "This sign-in expired or was started in another browser. Start again from your app.",
        );
    };
    let Some(provider) = services.sso.provider(&flow.idp_id) else {
        return pages::error(StatusCode::BAD_REQUEST, "Unknown identity provider");
    };
    // Constant-time is not needed: the state is compared with the cookie's, both the browser's.
    if query.get("state") != Some(&flow.auth.state) {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "The sign-in answer does not match this sign-in.",
        );
    }
    if let Some(error) = query.get("error") {
        let description = query
            .get("error_description")
            .map(String::as_str)
            .unwrap_or("");
        return pages::error(
            StatusCode::FORBIDDEN,
            &format!("The identity provider refused the sign-in: {error} {description}"),
        );
    }
    let Some(code) = query.get("code") else {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "The identity provider sent no code.",
        );
    };
    let callback = public_url(&services, CALLBACK);
    let claims = match provider
        .finish(&services, &callback, code, &flow.auth)
        .await
    {
        Ok(claims) => claims,
        Err(e) if e == crate::services::sso::provider::BUSY => {
            return pages::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many sign-ins at once: try again in a moment.",
            );
        }
        Err(e) => {
            tracing::warn!(idp = %flow.idp_id, error = %e, "oidc: sign-in refused");
            return pages::error(
                StatusCode::UNAUTHORIZED,
                "The identity provider's answer could not be verified.",
            );
        }
    };
    if !claims::meets(&provider.config.attribute_requirements, &claims) {
        return pages::error(
            StatusCode::FORBIDDEN,
            "Your account at the identity provider is not allowed to sign in here.",
        );
    }
    let identity = match claims::identity(&provider.config.user_mapping_provider, &claims) {
        Ok(identity) => identity,
        Err(e) => return pages::error(StatusCode::BAD_REQUEST, &e),
    };
    let session = ProviderSession {
        subject: identity.subject.clone(),
        sid: claims
            .get("sid")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
    };
    let mut response = match flow.purpose {
        Purpose::Login { redirect_url } => {
            login_or_register(&services, &flow.idp_id, identity, session, redirect_url).await
        }
        Purpose::Confirm {
            session: uia_session,
            user,
        } => confirm(&services, &flow.idp_id, &identity, &uia_session, &user).await,
    };
    // The flow is over: its cookie goes.
    set_cookie(&services, &mut response, FLOW_COOKIE, "", FLOW_PATH, 0);
    response
}

/// A sign-in for a client: the linked account, an existing account the provider may take over
/// (`allow_existing_users`), or the new-account page.
async fn login_or_register(
    services: &Arc<Services>,
    idp_id: &str,
    identity: Identity,
    session: ProviderSession,
    redirect_url: String,
) -> Response {
    let idp = idp_id.to_owned();
    let subject = identity.subject.clone();
    let proposed = identity.localpart.clone();
    let allow_existing = services
        .sso
        .provider(idp_id)
        .is_some_and(|p| p.config.allow_existing_users);
    let found = services
        .run(move |s| {
            if let Some(user) = s.external_ids.user(&idp, &subject)? {
                return Ok(Some(Ok(user)));
            }
            let Some(localpart) = proposed else {
                return Ok(None);
            };
            let Ok(user) = validate_localpart(s, &localpart) else {
                return Ok(None);
            };
            let exists = s.users.account(&user)?.is_some();
            if allow_existing && exists {
                s.external_ids.link(&idp, &subject, &user)?;
                tracing::info!(%user, idp, "oidc: existing account linked");
                return Ok(Some(Ok(user)));
            }
            Ok(Some(Err(exists)))
        })
        .await;
    match found {
        Ok(Some(Ok(user))) => finish_login(services, &user, idp_id, session, &redirect_url).await,
        Ok(other) => {
            let taken = matches!(other, Some(Err(true)));
            let confirm = services
                .sso
                .provider(idp_id)
                .is_none_or(|p| p.config.user_mapping_provider.confirm_localpart);
            let pending = NewAccount {
                idp_id: idp_id.to_owned(),
                choose_username: identity.localpart.is_none() || confirm || taken,
                identity,
                session,
                redirect_url,
            };
            let problem = taken.then_some("This username is taken: choose another.");
            new_account_page(services, &pending, problem, true)
        }
        Err(e) => pages::error(e.status, &e.message),
    }
}

/// The new-account page, and its cookie.
fn new_account_page(
    services: &Services,
    pending: &NewAccount,
    problem: Option<&str>,
    with_cookie: bool,
) -> Response {
    let provider_name = services
        .sso
        .provider(&pending.idp_id)
        .map(|p| p.config.idp_name.clone())
        .unwrap_or_default();
    let mut response = pages::new_account(
        services.globals.server_name().as_str(),
        &provider_name,
        pending.identity.localpart.as_deref(),
        pending.identity.display_name.as_deref(),
        pending.choose_username,
        problem,
    );
    if with_cookie {
        let cookie = (NEW_ACCOUNT_COOKIE, NEW_ACCOUNT_PATH);
        set_signed_cookie(services, &mut response, cookie, "sso-new-account", pending);
    }
    response
}

/// `POST /_parvis/client/sso/new_account`: creates the account the page showed (the username
/// the user chose, if they could), links it, and signs in. The cookie is SameSite=Lax, so another
/// site cannot submit this form for the user.
pub async fn create_account(
    State(services): State<Arc<Services>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(off) = disabled(&services) {
        return off;
    }
    let Some(pending) = read_cookie(&headers, NEW_ACCOUNT_COOKIE).and_then(|c| {
        services
            .sso
            .signer
            .open::<NewAccount>("sso-new-account", c, now_ms())
    }) else {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "This sign-in expired or was started in another browser. Start again from your app.",
        );
    };
    let form: HashMap<String, String> = openidconnect::url::form_urlencoded::parse(&body)
        .into_owned()
        .collect();
    let localpart = if pending.choose_username {
        form.get("username")
            .map(|u| u.trim().to_owned())
            .unwrap_or_default()
    } else {
        pending.identity.localpart.clone().unwrap_or_default()
    };
    let made = {
        let pending = pending.clone();
        services
            .run(move |s| {
                // Signed in meanwhile (another tab): the linked account.
                if let Some(user) = s
                    .external_ids
                    .user(&pending.idp_id, &pending.identity.subject)?
                {
                    return Ok(user);
                }
                let user = validate_localpart(s, &localpart)?;
                not_reserved(s, &user)?;
                let name = pending.identity.display_name.clone();
                s.users.create_hashed(&user, None, |account| {
                    account.displayname = name;
                })?;
                // Linked after the account is written: a crash in between leaves an account no
                // one can sign into by this provider until an admin links it; the link never
                // names a missing account.
                s.external_ids
                    .link(&pending.idp_id, &pending.identity.subject, &user)?;
                tracing::info!(%user, idp = %pending.idp_id, "oidc: account created");
                Ok(user)
            })
            .await
    };
    let mut response = match made {
        Ok(user) => {
            finish_login(
                &services,
                &user,
                &pending.idp_id,
                pending.session.clone(),
                &pending.redirect_url,
            )
            .await
        }
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            let problem = if e.errcode == "M_USER_IN_USE" {
                "This username is taken: choose another.".to_owned()
            } else {
                e.message.clone()
            };
            // The user chooses from now on (the proposed name may have been taken meanwhile).
            let mut retry = pending.clone();
            if retry.choose_username {
                retry.identity.localpart = form.get("username").cloned();
            }
            retry.choose_username = true;
            return new_account_page(&services, &retry, Some(&problem), true);
        }
        Err(e) => return pages::error(e.status, &e.message),
    };
    set_cookie(
        &services,
        &mut response,
        NEW_ACCOUNT_COOKIE,
        "",
        NEW_ACCOUNT_PATH,
        0,
    );
    response
}

/// The end of a sign-in: a login token for `user`, handed to the client's `redirect_url`:
/// straight when the client is whitelisted, else after the user confirms on a page.
async fn finish_login(
    services: &Arc<Services>,
    user: &UserId,
    idp_id: &str,
    session: ProviderSession,
    redirect_url: &str,
) -> Response {
    let lifetime = services.config().sso.login_token_lifetime.0;
    let made = {
        let (user, idp) = (user.to_owned(), idp_id.to_owned());
        services
            .run(move |s| {
                let account = s.users.account(&user)?;
                if account.is_none_or(|a| a.deactivated) {
                    return Err(Error::user_deactivated());
                }
                s.login_tokens
                    .create(&user, Some((idp, session)), lifetime, now_ms())
            })
            .await
    };
    let token = match made {
        Ok(token) => token,
        Err(e) => return pages::error(e.status, &e.message),
    };
    let mut target =
        openidconnect::url::Url::parse(redirect_url).expect("checked by client_redirect");
    target.query_pairs_mut().append_pair("loginToken", &token);
    let target = target.to_string();
    if services.sso.whitelisted(redirect_url) {
        return redirect(&target);
    }
    let host = openidconnect::url::Url::parse(redirect_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| redirect_url.to_owned());
    pages::confirm_client(user.as_str(), &target, &host)
}

/// The `session` of a fallback request and the user it confirms; else the page (or 404 without
/// single sign-on) to answer.
async fn live_uia_session(
    services: &Arc<Services>,
    query: &HashMap<String, String>,
) -> std::result::Result<(String, OwnedUserId), Response> {
    if let Some(off) = disabled(services) {
        return Err(off);
    }
    let Some(session) = query.get("session") else {
        return Err(pages::error(StatusCode::BAD_REQUEST, "session is required"));
    };
    let owner = {
        let session = session.clone();
        services.run(move |s| s.uia.owner(&session)).await
    };
    match owner {
        Ok(Some(user)) => Ok((session.clone(), user)),
        Ok(None) => Err(pages::error(
            StatusCode::BAD_REQUEST,
            "Unknown or expired session: start again from your app.",
        )),
        Err(e) => Err(pages::error(e.status, &e.message)),
    }
}

/// `GET /auth/m.login.sso/fallback/web?session=`: the user-interactive auth fallback of
/// `m.login.sso`: a link to each provider the session's user is linked to.
pub async fn uia_fallback(
    State(services): State<Arc<Services>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (session, user) = match live_uia_session(&services, &query).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let links = {
        let user = user.clone();
        services.run(move |s| s.external_ids.of_user(&user)).await
    };
    let choices: Vec<(String, String)> = links
        .unwrap_or_default()
        .iter()
        .filter_map(|link| services.sso.provider(&link.auth_provider))
        .map(|p| {
            (
                p.config.idp_name.clone(),
                format!(
                    "/_parvis/client/oidc/confirm/{}?session={}",
                    p.config.idp_id,
                    enc(&session)
                ),
            )
        })
        .collect();
    if choices.is_empty() {
        return pages::error(
            StatusCode::FORBIDDEN,
            "Your account is not linked to an identity provider.",
        );
    }
    pages::uia_start(&choices)
}

/// `GET /_parvis/client/oidc/confirm/{idpId}?session=`: to the provider, to confirm the
/// session's user.
pub async fn uia_confirm_start(
    State(services): State<Arc<Services>>,
    Path(idp_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (session, user) = match live_uia_session(&services, &query).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let purpose = Purpose::Confirm {
        session: session.clone(),
        user,
    };
    start(&services, &idp_id, purpose).await
}

/// The callback of a confirmation: the provider's subject must be linked to the session's user.
async fn confirm(
    services: &Arc<Services>,
    idp_id: &str,
    identity: &Identity,
    uia_session: &str,
    user: &UserId,
) -> Response {
    let linked = {
        let (idp, subject) = (idp_id.to_owned(), identity.subject.clone());
        services
            .run(move |s| s.external_ids.user(&idp, &subject))
            .await
    };
    match linked {
        Ok(Some(linked)) if linked == user => {
            let completed = {
                let (session, user) = (uia_session.to_owned(), user.to_owned());
                services
                    .run(move |s| s.uia.complete_stage(&session, "m.login.sso", &user))
                    .await
            };
            match completed {
                Ok(true) => pages::uia_done(),
                Ok(false) => pages::error(
                    StatusCode::BAD_REQUEST,
                    "Unknown or expired session: start again from your app.",
                ),
                Err(e) => pages::error(e.status, &e.message),
            }
        }
        Ok(_) => pages::error(
            StatusCode::FORBIDDEN,
            "You signed in as someone else at the identity provider than the account to confirm.",
        ),
        Err(e) => pages::error(e.status, &e.message),
    }
}

/// `POST /_parvis/client/oidc/backchannel_logout` (form `logout_token`): 200 once the sessions
/// it names are ended; 400 `invalid_request` for a token no provider signed.
pub async fn backchannel_logout(State(services): State<Arc<Services>>, body: Bytes) -> Response {
    if let Some(off) = disabled(&services) {
        return off;
    }
    let token = openidconnect::url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned());
    let answer = match token {
        None => Err("logout_token is required".to_owned()),
        Some(token) => crate::services::sso::backchannel::logout(&services, &token).await,
    };
    let mut response = match answer {
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "oidc: back-channel logout refused");
            (
                StatusCode::BAD_REQUEST,
                axum::Json(
                    serde_json::json!({ "error": "invalid_request", "error_description": e }),
                ),
            )
                .into_response()
        }
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
