//! Key routes: our signing keys (`/_matrix/key/v2/server`) and the notary (`/_matrix/key/v2/query`).

use std::{collections::BTreeSet, sync::Arc};

use axum::{Json, extract::State};
use ruma::{
    CanonicalJsonObject,
    api::federation::discovery::{get_remote_server_keys, get_remote_server_keys_batch},
};
use serde_json::{Value, json};

use crate::{
    api::ruma_wrapper::Ruma,
    error::Result,
    federation::{now_ms, own_keys, remote_keys},
    services::Services,
};

/// `GET /_matrix/key/v2/server` (and the deprecated `/{keyId}` form, which answers the same).
pub async fn server_keys(State(services): State<Arc<Services>>) -> Result<Json<Value>> {
    let document = services
        .run(|s| own_keys::own_document(s, now_ms()))
        .await?;
    Ok(Json(to_value(document)))
}

/// `GET /_matrix/key/v2/query/{serverName}`.
pub async fn query(
    State(services): State<Arc<Services>>,
    request: Ruma<get_remote_server_keys::v2::Request>,
) -> Result<Json<Value>> {
    let min_valid = u64::from(request.body.minimum_valid_until_ts.get());
    let mut budget = 1;
    let documents =
        remote_keys::notary_documents(&services, &request.body.server_name, min_valid, &mut budget)
            .await?;
    Ok(Json(
        json!({ "server_keys": documents.into_iter().map(to_value).collect::<Vec<_>>() }),
    ))
}

/// `POST /_matrix/key/v2/query`: the same for several servers (each once, whatever key ids are
/// asked: the whole document of each server is returned). At most
/// [`remote_keys::MAX_NOTARY_FETCHES`] servers are asked again; the others come from the cache.
pub async fn query_batch(
    State(services): State<Arc<Services>>,
    request: Ruma<get_remote_server_keys_batch::v2::Request>,
) -> Result<Json<Value>> {
    let now = now_ms();
    let mut server_keys = Vec::new();
    let servers: BTreeSet<_> = request.body.server_keys.keys().cloned().collect();
    let mut budget = remote_keys::MAX_NOTARY_FETCHES;
    for server in servers {
        let criteria = &request.body.server_keys[&server];
        let min_valid = criteria
            .values()
            .filter_map(|c| c.minimum_valid_until_ts.map(|t| u64::from(t.get())))
            .max()
            .unwrap_or(now);
        let documents =
            remote_keys::notary_documents(&services, &server, min_valid, &mut budget).await?;
        server_keys.extend(documents.into_iter().map(to_value));
    }
    Ok(Json(json!({ "server_keys": server_keys })))
}

fn to_value(document: CanonicalJsonObject) -> Value {
    serde_json::to_value(document).unwrap_or(Value::Null)
}
