//! Pushers: where a user's notifications are sent (`/pushers/set`), each tied to the device (access
//! token) that created it and deleted with it.

use ruma::{
    UserId,
    api::client::push::{Pusher, PusherIds, PusherKind},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{PUSHERS, PUSHKEYS};
use crate::{
    error::{Error, Result},
    storage::{
        Batch, Db,
        db::{decode_json, encode_json},
        keys::{Key, KeyReader},
    },
};

/// The path every push gateway URL ends with (spec: `data.url` of an http pusher).
pub const NOTIFY_PATH: &str = "/_matrix/push/v1/notify";

/// A pusher as stored (the value of a `pushers` entry).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredPusher {
    pub pusher: Pusher,
    /// The device whose access token created it.
    pub device_id: String,
    /// When the pushkey was last set (the gateway's `pushkey_ts`, in seconds).
    pub pushkey_ts: u64,
}

impl StoredPusher {
    /// The HTTP data of an http pusher (the only kind that is delivered).
    pub fn http(&self) -> Option<&ruma::push::HttpPusherData> {
        match &self.pusher.kind {
            PusherKind::Http(data) => Some(data),
            _ => None,
        }
    }
}

fn pusher_key(user: &str, app_id: &str, pushkey: &str) -> Vec<u8> {
    Key::new().str(user).str(app_id).str(pushkey).build()
}

fn pushkey_key(app_id: &str, pushkey: &str, user: &str) -> Vec<u8> {
    Key::new().str(app_id).str(pushkey).str(user).build()
}

/// Checks a `/pushers/set` body as the spec requires, before ruma parses it: a missing field is
/// `M_MISSING_PARAM`, a bad value `M_INVALID_PARAM`.
pub fn validate_body(body: &Value) -> Result<()> {
    let obj = body
        .as_object()
        .ok_or_else(|| Error::bad_json("Body must be a JSON object"))?;
    let string = |field: &str| -> Result<&str> {
        match obj.get(field) {
            None | Some(Value::Null) => Err(Error::missing_param(format!("Missing {field}"))),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(Error::invalid_param(format!("{field} must be a string"))),
        }
    };
    let app_id = string("app_id")?;
    let pushkey = string("pushkey")?;
    if app_id.len() > 64 {
        return Err(Error::invalid_param("app_id is longer than 64 bytes"));
    }
    if pushkey.len() > 512 {
        return Err(Error::invalid_param("pushkey is longer than 512 bytes"));
    }
    let kind = match obj.get("kind") {
        None => return Err(Error::missing_param("Missing kind")),
        // `kind: null` deletes the pusher: nothing else is needed.
        Some(Value::Null) => return Ok(()),
        Some(Value::String(k)) => k.as_str(),
        Some(_) => return Err(Error::invalid_param("kind must be a string")),
    };
    for field in ["app_display_name", "device_display_name", "lang"] {
        string(field)?;
    }
    let data = match obj.get("data") {
        None | Some(Value::Null) => return Err(Error::missing_param("Missing data")),
        Some(Value::Object(data)) => data,
        Some(_) => return Err(Error::invalid_param("data must be an object")),
    };
    if obj.get("append").is_some_and(|a| !a.is_boolean()) {
        return Err(Error::invalid_param("append must be a boolean"));
    }
    match kind {
        "http" => {
            let url = match data.get("url") {
                None | Some(Value::Null) => {
                    return Err(Error::missing_param("An http pusher needs data.url"));
                }
                Some(Value::String(url)) => url,
                Some(_) => return Err(Error::invalid_param("data.url must be a string")),
            };
            check_url(url)?;
            if data
                .get("format")
                .is_some_and(|f| f.as_str() != Some("event_id_only"))
            {
                return Err(Error::invalid_param("data.format must be event_id_only"));
            }
            Ok(())
        }
        "email" => Err(Error::invalid_param("Email pushers are not supported")),
        other => Err(Error::invalid_param(format!("Unknown pusher kind {other}"))),
    }
}

/// A gateway URL: http or https, with a host, ending in the notify path.
pub fn check_url(url: &str) -> Result<http::Uri> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| Error::invalid_param("data.url is not a URL"))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.host().is_none() || uri.path() != NOTIFY_PATH {
        return Err(Error::invalid_param(format!(
            "data.url must be an http(s) URL ending in {NOTIFY_PATH}"
        )));
    }
    Ok(uri)
}

pub struct Pushers<'a> {
    pub db: &'a Db,
    pub known: &'a std::sync::Mutex<HttpPusherUsers>,
}

/// Whether users have an http pusher, as last read (a room event asks it for every member). A
/// new pusher empties it after its write; a deleted one only makes a `true` stale, which costs a
/// read of the list.
#[derive(Default)]
pub struct HttpPusherUsers {
    generation: u64,
    users: std::collections::HashMap<ruma::OwnedUserId, bool>,
}

/// Users remembered before the map starts again empty.
const KNOWN_USERS: usize = 65_536;

impl Pushers<'_> {
    /// Whether `user` has a pusher of kind http.
    pub fn has_http(&self, user: &UserId) -> Result<bool> {
        let generation = {
            let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(has) = known.users.get(user) {
                return Ok(*has);
            }
            known.generation
        };
        let has = self.list(user)?.iter().any(|p| p.http().is_some());
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        // A pusher added meanwhile bumped the generation: what was read may miss it.
        if known.generation == generation {
            if known.users.len() >= KNOWN_USERS {
                known.users.clear();
            }
            known.users.insert(user.to_owned(), has);
        }
        Ok(has)
    }

    pub fn list(&self, user: &UserId) -> Result<Vec<StoredPusher>> {
        list(self.db, user)
    }

    pub fn get(&self, user: &UserId, app_id: &str, pushkey: &str) -> Result<Option<StoredPusher>> {
        Ok(self
            .db
            .get_json(PUSHERS, &pusher_key(user.as_str(), app_id, pushkey))?)
    }

    /// Creates or replaces a pusher; without `append`, the pushers of other users with the same
    /// app id and pushkey are deleted (one batch).
    pub fn set(&self, user: &UserId, device_id: &str, pusher: Pusher, append: bool) -> Result<()> {
        let mut batch = Batch::new();
        let (app_id, pushkey) = (pusher.ids.app_id.clone(), pusher.ids.pushkey.clone());
        if !append {
            let prefix = Key::new().str(&app_id).str(&pushkey).build();
            for entry in self.db.scan_prefix(PUSHKEYS, &prefix) {
                let (key, _) = entry?;
                let mut reader = KeyReader::new(&key[prefix.len()..]);
                if let Some(other) = reader.str().filter(|u| *u != user.as_str()) {
                    batch.delete(PUSHERS, pusher_key(other, &app_id, &pushkey));
                    batch.delete(PUSHKEYS, key.to_vec());
                }
            }
        }
        let previous = self.get(user, &app_id, &pushkey)?;
        let pushkey_ts = previous.map_or_else(|| crate::util::now_ms() / 1000, |p| p.pushkey_ts);
        let stored = StoredPusher {
            pusher,
            device_id: device_id.to_owned(),
            pushkey_ts,
        };
        batch.put(
            PUSHERS,
            pusher_key(user.as_str(), &app_id, &pushkey),
            encode_json(&stored),
        );
        batch.put(
            PUSHKEYS,
            pushkey_key(&app_id, &pushkey, user.as_str()),
            Vec::new(),
        );
        self.db.write(batch)?;
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.generation += 1;
        known.users.clear();
        Ok(())
    }

    /// Deletes a pusher (nothing happens when there is none).
    pub fn delete(&self, user: &UserId, ids: &PusherIds) -> Result<()> {
        let mut batch = Batch::new();
        delete_ops(&mut batch, user.as_str(), &ids.app_id, &ids.pushkey);
        Ok(self.db.write(batch)?)
    }
}

/// The pushers of `user`.
fn list(db: &Db, user: &UserId) -> Result<Vec<StoredPusher>> {
    let prefix = Key::new().str(user.as_str()).build();
    db.scan_prefix(PUSHERS, &prefix)
        .map(|entry| {
            let (_, value) = entry?;
            Ok(decode_json(PUSHERS, &value)?)
        })
        .collect()
}

pub fn delete_ops(batch: &mut Batch, user: &str, app_id: &str, pushkey: &str) {
    batch.delete(PUSHERS, pusher_key(user, app_id, pushkey));
    batch.delete(PUSHKEYS, pushkey_key(app_id, pushkey, user));
}

/// Adds to `batch` the deletion of the pushers created by `device_id` (its logout or deletion).
pub fn delete_for_device(db: &Db, batch: &mut Batch, user: &UserId, device_id: &str) -> Result<()> {
    for pusher in list(db, user)? {
        if pusher.device_id == device_id {
            delete_ops(
                batch,
                user.as_str(),
                &pusher.pusher.ids.app_id,
                &pusher.pusher.ids.pushkey,
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body() -> Value {
        json!({
            "kind": "http", "app_id": "org.example.app", "pushkey": "key1",
            "app_display_name": "App", "device_display_name": "Phone", "lang": "en",
            "data": { "url": "https://push.example.org/_matrix/push/v1/notify" },
        })
    }

    #[test]
    fn pusher_bodies_get_the_spec_errors() {
        assert!(validate_body(&body()).is_ok());
        let mut b = body();
        b.as_object_mut().unwrap().remove("pushkey");
        assert_eq!(validate_body(&b).unwrap_err().errcode, "M_MISSING_PARAM");
        let mut b = body();
        b["data"] = json!({});
        assert_eq!(validate_body(&b).unwrap_err().errcode, "M_MISSING_PARAM");
        let mut b = body();
        b["data"]["url"] = json!("https://push.example.org/notify");
        assert_eq!(validate_body(&b).unwrap_err().errcode, "M_INVALID_PARAM");
        let mut b = body();
        b["data"]["url"] = json!("ftp://push.example.org/_matrix/push/v1/notify");
        assert_eq!(validate_body(&b).unwrap_err().errcode, "M_INVALID_PARAM");
        let mut b = body();
        b["kind"] = json!("carrier-pigeon");
        assert_eq!(validate_body(&b).unwrap_err().errcode, "M_INVALID_PARAM");
        let delete = json!({ "kind": null, "app_id": "a", "pushkey": "k" });
        assert!(validate_body(&delete).is_ok());
    }
}
