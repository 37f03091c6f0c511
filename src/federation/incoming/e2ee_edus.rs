//! End-to-end encryption EDUs received in a transaction: `m.direct_to_device` (delivered to local
//! devices), `m.device_list_update` and `m.signing_key_update` (the cached device list follows,
//! local users see the user's devices changed). Every user named must belong to the origin.

use ruma::{OwnedUserId, ServerName};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    services::{Services, keys::remote_cache, to_device},
};

/// The EDU's `user_id`, which must be a user of the origin.
fn user_of_origin(origin: &ServerName, content: &Value) -> Result<OwnedUserId> {
    super::edus::user_of(origin, content.get("user_id"))
}

/// Applies an end-to-end EDU; `None` when the type is not one of them.
pub fn apply(
    s: &Services,
    origin: &ServerName,
    edu_type: &str,
    content: &Value,
) -> Option<Result<()>> {
    Some(match edu_type {
        "m.direct_to_device" => to_device::receive(s, origin, content),
        "m.device_list_update" => device_list_update(s, origin, content),
        "m.signing_key_update" => signing_key_update(s, origin, content),
        _ => return None,
    })
}

fn device_list_update(s: &Services, origin: &ServerName, content: &Value) -> Result<()> {
    let user = user_of_origin(origin, content)?;
    let update: remote_cache::DeviceListUpdate = serde_json::from_value(content.clone())
        .map_err(|e| Error::bad_json(format!("m.device_list_update: {e}")))?;
    remote_cache::received_device_update(s, &user, &update)
}

fn signing_key_update(s: &Services, origin: &ServerName, content: &Value) -> Result<()> {
    let user = user_of_origin(origin, content)?;
    remote_cache::received_signing_update(
        s,
        &user,
        content.get("master_key").cloned(),
        content.get("self_signing_key").cloned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn users_must_belong_to_the_origin() {
        let origin: ruma::OwnedServerName = "a.example".try_into().unwrap();
        assert!(user_of_origin(&origin, &json!({ "user_id": "@u:a.example" })).is_ok());
        assert_eq!(
            user_of_origin(&origin, &json!({ "user_id": "@u:b.example" }))
                .unwrap_err()
                .errcode,
            "M_FORBIDDEN"
        );
        assert_eq!(
            user_of_origin(&origin, &json!({})).unwrap_err().errcode,
            "M_BAD_JSON"
        );
    }
}
