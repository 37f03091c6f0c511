//! Scenario 1: password login through the SDK, whoami, and a wrong password refused with M_FORBIDDEN.

use anyhow::{Result, ensure};
use matrix_sdk::{ruma::api::error::ErrorKind, sliding_sync::Version};

use crate::common::{Api, PASSWORD, init_tracing, login, new_client, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_login_with_password_then_whoami() -> Result<()> {
    init_tracing();
    let localpart = unique("s1");
    let api = Api::register(&localpart).await?;

    let sdk = login(&localpart, "s1 sdk device").await?;
    let client = &sdk.client;
    ensure!(client.user_id().map(|u| u.as_str()) == Some(api.user_id.as_str()), "login: user id {:?}", client.user_id());
    let device_id = client.device_id().expect("a device id after login").to_owned();

    let whoami = client.whoami().await?;
    ensure!(whoami.user_id.as_str() == api.user_id, "whoami user_id {} != {}", whoami.user_id, api.user_id);
    ensure!(
        whoami.device_id.as_deref() == Some(&*device_id),
        "whoami device_id {:?} != the login's {device_id}",
        whoami.device_id
    );
    ensure!(!whoami.is_guest, "whoami: is_guest true for a registered user");

    // /versions advertises the simplified sliding sync (MSC4186) that the SDK then uses.
    let versions = client.available_sliding_sync_versions().await;
    ensure!(
        versions.iter().any(|v| matches!(v, Version::Native)),
        "/versions does not advertise org.matrix.simplified_msc3575: {versions:?}"
    );

    // A wrong password: M_FORBIDDEN, and the client stays logged out.
    let other = new_client().await?;
    let error = other
        .client
        .matrix_auth()
        .login_username(&localpart, &format!("{PASSWORD} but wrong"))
        .await
        .expect_err("a wrong password must not log in");
    ensure!(
        matches!(error.client_api_error_kind(), Some(ErrorKind::Forbidden)),
        "wrong password: expected M_FORBIDDEN, got {error:?}"
    );
    ensure!(!other.client.is_active(), "client active after a refused login");
    Ok(())
}
