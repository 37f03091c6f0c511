//! /versions, /.well-known and /capabilities.

use std::{collections::BTreeMap, sync::Arc};

use axum::{Json, extract::State};
use ruma::api::client::discovery::{
    get_capabilities::{
        self,
        v3::{
            AccountModerationCapability, Capabilities, ChangePasswordCapability,
            GetLoginTokenCapability, RoomVersionStability, RoomVersionsCapability,
            ThirdPartyIdChangesCapability,
        },
    },
    get_supported_versions,
};
use serde_json::{Value, json};

use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::Result,
    services::{Services, rooms::version},
};

pub const SPEC_VERSIONS: &[&str] = &[
    "r0.5.0", "r0.6.0", "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8",
    "v1.9", "v1.10", "v1.11", "v1.12",
];

pub async fn versions(
    _: Ruma<get_supported_versions::Request>,
) -> Result<RumaResponse<get_supported_versions::Response>> {
    let mut response = get_supported_versions::Response::new(
        SPEC_VERSIONS.iter().map(|v| v.to_string()).collect(),
    );
    response.unstable_features = BTreeMap::from([
        ("org.matrix.msc3827.stable".to_owned(), true),
        ("org.matrix.simplified_msc3575".to_owned(), true),
        // Room summary (MSC3266's unstable paths) and mutual rooms by query (MSC2666).
        ("im.nheko.summary".to_owned(), true),
        ("uk.half-shot.msc2666.query_mutual_rooms".to_owned(), true),
        // Account locking and suspension by admins (the spec's v1.18 endpoints).
        ("uk.timedout.msc4323".to_owned(), true),
    ]);
    Ok(response.into())
}

/// `/.well-known/matrix/client`: where clients find the client-server API.
pub async fn well_known_client(State(services): State<Arc<Services>>) -> Json<Value> {
    Json(json!({ "m.homeserver": { "base_url": base_url(&services) } }))
}

/// `/.well-known/matrix/support`: the configured contacts and support page (`[support]`); 404
/// when none are configured.
pub async fn well_known_support(State(services): State<Arc<Services>>) -> Result<Json<Value>> {
    let support = &services.config().support;
    if support.contacts.is_empty() && support.support_page.is_none() {
        return Err(crate::error::Error::not_found(
            "No support information is configured for this server",
        ));
    }
    let mut body = json!({ "contacts": support.contacts });
    if let Some(page) = &support.support_page {
        body["support_page"] = json!(page);
    }
    Ok(Json(body))
}

/// `/.well-known/matrix/server`: the delegated federation address.
pub async fn well_known_server(State(services): State<Arc<Services>>) -> Json<Value> {
    Json(json!({ "m.server": services.federation.well_known_server(services.config()) }))
}

fn base_url(s: &Services) -> String {
    match &s.config().listen.public_base_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => format!("http://{}", s.globals.server_name()),
    }
}

/// `GET /capabilities`: what this configuration allows the caller (password changes, login
/// tokens, and for admins account moderation).
pub async fn capabilities(
    State(services): State<Arc<Services>>,
    req: Ruma<get_capabilities::v3::Request>,
) -> Result<RumaResponse<get_capabilities::v3::Response>> {
    let default = services.config().rooms.default_version.clone();
    let available = version::SUPPORTED
        .iter()
        .map(|v| (v.clone(), RoomVersionStability::Stable))
        .collect();
    let mut capabilities = Capabilities::new();
    capabilities.room_versions = RoomVersionsCapability::new(default, available);
    // E-mail addresses can be added and removed when the server sends mail ([email]).
    capabilities.thirdparty_id_changes =
        ThirdPartyIdChangesCapability::new(services.mailer.is_some());
    capabilities.change_password =
        ChangePasswordCapability::new(services.config().password_config.enabled);
    capabilities.get_login_token = GetLoginTokenCapability::new(
        services
            .config()
            .sessions
            .login_via_existing_session
            .enabled,
    );
    let caller = req.user()?.clone();
    let admin = services
        .run(move |s| Ok(s.users.account(&caller)?.is_some_and(|a| a.admin)))
        .await?;
    if admin {
        capabilities.account_moderation = AccountModerationCapability::new(true, true);
    }
    Ok(get_capabilities::v3::Response::new(capabilities).into())
}
