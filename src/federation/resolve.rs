//! Running the discovery rules of [`super::discovery`] against the network: `.well-known`
//! (HTTPS on port 443), then SRV, then port 8448. Results are cached for an hour.
//!
//! TODO(federation): SRV records (`_matrix-fed._tcp`, then `_matrix._tcp`) are not looked up yet:
//! a host name without `.well-known` delegation goes straight to port 8448 (spec/federation.md).

use std::time::Instant;

use ruma::ServerName;

use super::{
    RESOLVE_CACHE,
    client::{Transport, TransportError},
    discovery::{self, Destination, Plan},
};
use crate::services::Services;

/// Where to send requests for `name`.
pub async fn resolve(services: &Services, name: &ServerName) -> Result<Destination, TransportError> {
    let fed = &services.federation;
    let plan = discovery::plan_for_server_name(name);
    let hostname = match plan {
        Plan::Direct(dest) => return Ok(dest),
        Plan::WellKnown { hostname } | Plan::Srv { hostname } => hostname,
    };
    if let Some((dest, at)) = fed.resolved.lock().unwrap_or_else(|e| e.into_inner()).get(name)
        && at.elapsed() < RESOLVE_CACHE
    {
        return Ok(dest.clone());
    }
    let dest = match well_known(&fed.transport, &hostname).await.as_deref().and_then(discovery::plan_for_delegated) {
        Some(Plan::Direct(dest)) => dest,
        Some(Plan::Srv { hostname: delegated }) => srv_or_default(&delegated).await,
        _ => srv_or_default(&hostname).await,
    };
    fed.resolved.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_owned(), (dest.clone(), Instant::now()));
    Ok(dest)
}

/// `GET https://{hostname}/.well-known/matrix/server`: the delegated server name, if any.
async fn well_known(transport: &Transport, hostname: &str) -> Option<String> {
    let dest = Destination {
        host: hostname.to_owned(),
        port: 443,
        host_header: hostname.to_owned(),
        tls_name: hostname.to_owned(),
    };
    let request = http::Request::get("/.well-known/matrix/server").body(Vec::new()).ok()?;
    match transport.send(&dest, request).await {
        Ok(response) if response.status().is_success() => discovery::parse_well_known(response.body()),
        Ok(response) => {
            tracing::debug!("federation: .well-known of {hostname}: {}", response.status());
            None
        }
        Err(e) => {
            tracing::debug!("federation: .well-known of {hostname}: {e}");
            None
        }
    }
}

async fn srv_or_default(hostname: &str) -> Destination {
    // TODO(federation): SRV lookup (`_matrix-fed._tcp.{hostname}`, then `_matrix._tcp.{hostname}`)
    // with `discovery::srv_destination`.
    discovery::default_destination(hostname)
}
