//! Other servers' signing keys: fetched from `/_matrix/key/v2/server`, checked (server name,
//! self-signature), cached in RocksDB with their `valid_until_ts`, and served again by our notary.
//! Fetches are rate-limited per server (`key_fetch_gate`) and a notary request may cause at most
//! [`MAX_NOTARY_FETCHES`] of them.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, OwnedServerName, ServerName, serde::Base64,
    signatures::PublicKeyMap,
};
use serde::{Deserialize, Serialize};

use super::{
    Federation, SERVER_KEY_DOCUMENTS, SERVER_KEYS,
    key_fetch_gate::Gated,
    now_ms, own_keys,
    request::send_raw,
    signing::{KeyRecord, VerifiedKeys, add_signature, verify_key_document},
    unreachable,
};
use crate::{
    error::Result,
    services::Services,
    storage::{
        Batch,
        db::{decode_json, encode_json},
        keys::{Key, KeyReader},
    },
};

/// Longest time we trust a fetched key, whatever its `valid_until_ts` says (the spec's advice:
/// the lesser of `valid_until_ts` and 7 days from now).
const MAX_KEY_LIFETIME_MS: u64 = 7 * 24 * 3_600_000;

/// A server's newest key document, as it signed it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredDocument {
    pub fetched_ts: u64,
    pub document: CanonicalJsonObject,
}

impl StoredDocument {
    pub fn valid_until_ts(&self) -> u64 {
        match self.document.get("valid_until_ts") {
            Some(ruma::CanonicalJsonValue::Integer(n)) => u64::try_from(i64::from(*n)).unwrap_or(0),
            _ => 0,
        }
    }

    /// Whether a notary should ask the origin again: the document does not last until
    /// `min_valid_until_ts`, or half its lifetime has passed.
    pub fn needs_refresh(&self, now: u64, min_valid_until_ts: u64) -> bool {
        let valid_until = self.valid_until_ts();
        let half_life = self.fetched_ts + valid_until.saturating_sub(self.fetched_ts) / 2;
        valid_until < min_valid_until_ts || now >= half_life
    }
}

impl Federation {
    /// Every cached key of `server`, current and old.
    pub fn cached_keys(&self, server: &ServerName) -> Result<BTreeMap<String, KeyRecord>> {
        let prefix = Key::new().str(server.as_str()).build();
        let mut keys = BTreeMap::new();
        for item in self.db.scan_prefix(SERVER_KEYS, &prefix) {
            let (k, v) = item?;
            let mut reader = KeyReader::new(&k);
            let (Some(_), Some(id)) = (reader.str(), reader.str()) else {
                continue;
            };
            keys.insert(id.to_owned(), decode_json(SERVER_KEYS, &v)?);
        }
        Ok(keys)
    }

    pub fn cached_document(&self, server: &ServerName) -> Result<Option<StoredDocument>> {
        Ok(self
            .db
            .get_json(SERVER_KEY_DOCUMENTS, server.as_str().as_bytes())?)
    }

    /// Stores a checked document and merges its keys into the cache, in one batch. A key keeps
    /// the latest `valid_until_ts` it was published with; keys no longer listed stay cached (they
    /// still verify what they signed while valid).
    pub fn store_keys(
        &self,
        server: &ServerName,
        document: &CanonicalJsonObject,
        verified: &VerifiedKeys,
        now: u64,
    ) -> Result<()> {
        let cached = self.cached_keys(server)?;
        let cap = now + MAX_KEY_LIFETIME_MS;
        let mut batch = Batch::new();
        for (id, new) in &verified.keys {
            let mut record = new.clone();
            record.valid_until_ts = record.valid_until_ts.min(cap);
            if let Some(old) = cached.get(id) {
                if old.key == record.key {
                    record.valid_until_ts = record.valid_until_ts.max(old.valid_until_ts);
                } else {
                    tracing::warn!("federation: {server} changed the bytes of its key {id}");
                }
            }
            if cached.get(id) != Some(&record) {
                batch.put(
                    SERVER_KEYS,
                    Key::new().str(server.as_str()).str(id).build(),
                    encode_json(&record),
                );
            }
        }
        let stored = StoredDocument {
            fetched_ts: now,
            document: document.clone(),
        };
        batch.put(
            SERVER_KEY_DOCUMENTS,
            server.as_str().as_bytes(),
            encode_json(&stored),
        );
        Ok(self.db.write(batch)?)
    }
}

/// How many servers one notary request may make us fetch keys from; the others are answered
/// from the cache.
pub const MAX_NOTARY_FETCHES: usize = 10;

/// Fetches `server`'s keys from the server itself, checks and caches them, unless a fetch of it
/// ran within `federation.key_fetch_interval_secs` or finished while we waited for it
/// (`key_fetch_gate`): then its outcome is used (the cached document, or the failure).
pub async fn fetch_from_origin(
    services: &Arc<Services>,
    server: &ServerName,
) -> Result<StoredDocument> {
    match services
        .federation
        .key_fetches
        .run(server, || fetch_and_store(services, server))
        .await
    {
        Gated::Ran(result) => {
            if let Err(e) = &result {
                tracing::info!("federation: keys of {server}: {e}");
            }
            result
        }
        Gated::Skipped { ok: true } => {
            let owned = server.to_owned();
            services
                .run(move |s| s.federation.cached_document(&owned))
                .await?
                .ok_or_else(|| unreachable(format!("no keys of {server}")))
        }
        Gated::Skipped { ok: false } => Err(unreachable(format!(
            "{server} failed recently; not asking again yet"
        ))),
    }
}

async fn fetch_and_store(services: &Arc<Services>, server: &ServerName) -> Result<StoredDocument> {
    let request = http::Request::get("/_matrix/key/v2/server")
        .body(Vec::new())
        .expect("static request");
    let response = send_raw(services, server, request, false).await?;
    if !response.status().is_success() {
        return Err(unreachable(format!(
            "{server} answered {} for its keys",
            response.status()
        )));
    }
    let document: CanonicalJsonObject = serde_json::from_slice(response.body())
        .map_err(|e| unreachable(format!("{server}: key document is not canonical JSON: {e}")))?;
    let verified = verify_key_document(&document, server)
        .map_err(|e| unreachable(format!("{server}: {e}")))?;
    let now = now_ms();
    let server_owned = server.to_owned();
    let stored = StoredDocument {
        fetched_ts: now,
        document,
    };
    let to_store = stored.clone();
    services
        .run(move |s| {
            s.federation
                .store_keys(&server_owned, &to_store.document, &verified, now)
        })
        .await?;
    Ok(stored)
}

/// The keys of `server` that verify signatures made at `at_ts` (ms), current and old; when the
/// cache has none (or lacks `wanted`), they are fetched from the server first (at most once per
/// interval, see [`fetch_from_origin`]).
pub async fn keys_for(
    services: &Arc<Services>,
    server: &ServerName,
    at_ts: u64,
    wanted: Option<&str>,
) -> Result<BTreeMap<String, KeyRecord>> {
    let wanted: Vec<String> = wanted.into_iter().map(str::to_owned).collect();
    keys_with_ids(services, server, at_ts, &wanted).await
}

/// The keys of `server` usable at `at_ts`; fetched first when the cache has none usable or lacks
/// one of `wanted` (key ids named by a request or an event's signatures: a rotated key is fetched
/// even while older ones are cached).
pub async fn keys_with_ids(
    services: &Arc<Services>,
    server: &ServerName,
    at_ts: u64,
    wanted: &[String],
) -> Result<BTreeMap<String, KeyRecord>> {
    let usable = |keys: BTreeMap<String, KeyRecord>| -> BTreeMap<String, KeyRecord> {
        keys.into_iter()
            .filter(|(_, r)| r.usable_at(at_ts))
            .collect()
    };
    if server == services.globals.server_name() {
        return services
            .run(move |s| own_keys::own_key_records(s, now_ms()))
            .await
            .map(usable);
    }
    let owned = server.to_owned();
    let cached = usable(
        services
            .run(move |s| s.federation.cached_keys(&owned))
            .await?,
    );
    let complete = if wanted.is_empty() {
        !cached.is_empty()
    } else {
        wanted.iter().all(|id| cached.contains_key(id))
    };
    if complete {
        return Ok(cached);
    }
    if fetch_from_origin(services, server).await.is_err() {
        return Ok(cached);
    }
    let owned = server.to_owned();
    Ok(usable(
        services
            .run(move |s| s.federation.cached_keys(&owned))
            .await?,
    ))
}

/// The keys of `server` valid at `at_ts`: for checking event and request signatures.
pub async fn verify_keys_for(
    services: &Arc<Services>,
    server: &ServerName,
    at_ts: u64,
) -> Result<BTreeMap<String, KeyRecord>> {
    keys_for(services, server, at_ts, None).await
}

/// The key ids of `server`'s signatures on an event (pure).
pub fn signature_key_ids(object: &CanonicalJsonObject, server: &str) -> Vec<String> {
    match object.get("signatures") {
        Some(CanonicalJsonValue::Object(all)) => match all.get(server) {
            Some(CanonicalJsonValue::Object(sigs)) => sigs
                .keys()
                .filter(|id| id.starts_with("ed25519:"))
                .cloned()
                .collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The public keys of `servers` to check an event's signatures, valid at `ts`: a key id named
/// in the event's signatures that is not cached is fetched (rate-limited as [`fetch_from_origin`]).
pub async fn keys_for_event(
    services: &Arc<Services>,
    object: &CanonicalJsonObject,
    servers: &BTreeSet<OwnedServerName>,
    ts: u64,
) -> Result<PublicKeyMap> {
    let mut map = PublicKeyMap::new();
    for server in servers {
        let wanted = signature_key_ids(object, server.as_str());
        let keys = keys_with_ids(services, server, ts, &wanted).await?;
        let set = keys
            .into_iter()
            .filter_map(|(id, record)| Base64::parse(&record.key).ok().map(|key| (id, key)))
            .collect();
        map.insert(server.to_string(), set);
    }
    Ok(map)
}

/// The notary's answer for `server`: its newest key document (fetched again when it does not last
/// until `min_valid_until_ts` or is past half its life; the cached one when the server is
/// unreachable), co-signed by us. Empty when we have nothing.
/// `fetch_budget` is how many more servers this notary request may fetch from (decremented when
/// this one needs a fetch; at 0 the cache answers alone).
pub async fn notary_documents(
    services: &Arc<Services>,
    server: &ServerName,
    min_valid_until_ts: u64,
    fetch_budget: &mut usize,
) -> Result<Vec<CanonicalJsonObject>> {
    let now = now_ms();
    if server == services.globals.server_name() {
        return Ok(vec![
            services
                .run(move |s| own_keys::own_document(s, now))
                .await?,
        ]);
    }
    let owned = server.to_owned();
    let mut cached = services
        .run(move |s| s.federation.cached_document(&owned))
        .await?;
    if cached
        .as_ref()
        .is_none_or(|doc| doc.needs_refresh(now, min_valid_until_ts))
        && *fetch_budget > 0
    {
        *fetch_budget -= 1;
        if let Ok(fresh) = fetch_from_origin(services, server).await {
            cached = Some(fresh);
        }
    }
    Ok(cached
        .map(|stored| {
            let mut document = stored.document;
            add_signature(
                &mut document,
                services.globals.server_name(),
                &services.globals.keypair,
            );
            document
        })
        .into_iter()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_rules() {
        let doc = |fetched_ts, valid_until: u64| StoredDocument {
            fetched_ts,
            document: CanonicalJsonObject::from([(
                "valid_until_ts".to_owned(),
                ruma::CanonicalJsonValue::Integer(ruma::Int::try_from(valid_until).unwrap()),
            )]),
        };
        // Fetched at 0, valid until 1000: fresh until 500.
        assert!(!doc(0, 1000).needs_refresh(499, 0));
        assert!(doc(0, 1000).needs_refresh(500, 0));
        // Asked to last longer than it does.
        assert!(doc(0, 1000).needs_refresh(10, 1001));
        assert!(!doc(0, 1000).needs_refresh(10, 1000));
    }
}
