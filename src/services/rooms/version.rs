//! Supported room versions and their rules.

use ruma::{RoomVersionId, room_version_rules::RoomVersionRules};

use crate::error::{Error, Result};

pub const SUPPORTED: &[RoomVersionId] = &[
    RoomVersionId::V1,
    RoomVersionId::V2,
    RoomVersionId::V3,
    RoomVersionId::V4,
    RoomVersionId::V5,
    RoomVersionId::V6,
    RoomVersionId::V7,
    RoomVersionId::V8,
    RoomVersionId::V9,
    RoomVersionId::V10,
    RoomVersionId::V11,
    RoomVersionId::V12,
];

pub fn is_supported(version: &RoomVersionId) -> bool {
    SUPPORTED.contains(version)
}

pub fn rules(version: &RoomVersionId) -> Result<RoomVersionRules> {
    if !is_supported(version) {
        return Err(Error::unsupported_room_version(format!(
            "room version {version} is not supported"
        )));
    }
    version
        .rules()
        .ok_or_else(|| Error::unsupported_room_version(format!("no rules for {version}")))
}
