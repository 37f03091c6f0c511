//! Running the discovery rules of [`super::discovery`] against the network: `.well-known`
//! (HTTPS on port 443), then SRV (`_matrix-fed._tcp`, then the deprecated `_matrix._tcp`), then
//! port 8448. Results are cached for an hour (at most `RESOLVE_CACHE_ENTRIES` names).

use ruma::ServerName;

use super::{
    client::{Transport, TransportError},
    discovery::{self, Destination, Plan},
    dns,
};

/// Time limit of one SRV query to one nameserver.
const SRV_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
use crate::services::Services;

/// Where to send requests for `name`.
pub async fn resolve(
    services: &Services,
    name: &ServerName,
) -> Result<Destination, TransportError> {
    let fed = &services.federation;
    let plan = discovery::plan_for_server_name(name);
    let hostname = match plan {
        Plan::Direct(dest) => return Ok(dest),
        Plan::WellKnown { hostname } | Plan::Srv { hostname } => hostname,
    };
    if let Some(dest) = fed
        .resolved
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(name)
    {
        return Ok(dest);
    }
    let dest = match well_known(&fed.transport, &hostname)
        .await
        .as_deref()
        .and_then(discovery::plan_for_delegated)
    {
        Some(Plan::Direct(dest)) => dest,
        Some(Plan::Srv {
            hostname: delegated,
        }) => srv_or_default(&delegated).await,
        _ => srv_or_default(&hostname).await,
    };
    fed.resolved
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_owned(), dest.clone());
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
    let request = http::Request::get("/.well-known/matrix/server")
        .body(Vec::new())
        .ok()?;
    match transport.send(&dest, request).await {
        Ok(response) if response.status().is_success() => {
            discovery::parse_well_known(response.body())
        }
        Ok(response) => {
            tracing::debug!(
                "federation: .well-known of {hostname}: {}",
                response.status()
            );
            None
        }
        Err(e) => {
            tracing::debug!("federation: .well-known of {hostname}: {e}");
            None
        }
    }
}

async fn srv_or_default(hostname: &str) -> Destination {
    for service in ["_matrix-fed._tcp", "_matrix._tcp"] {
        let records = dns::lookup_srv(&format!("{service}.{hostname}"), SRV_TIMEOUT).await;
        if let Some((target, port)) = dns::pick(&records) {
            return discovery::srv_destination(hostname, &target, port);
        }
    }
    discovery::default_destination(hostname)
}
