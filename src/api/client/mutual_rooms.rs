//! Rooms the caller shares with another user: `GET /_matrix/client/v1/mutual_rooms` (spec v1.19)
//! and MSC2666's unstable `/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms`, as
//! Synapse serves it. Every room both are joined to, ordered by room id, in one page (no
//! `next_batch` is handed out, so any `from` is unknown: 400 `M_INVALID_PARAM`).

use std::{collections::BTreeSet, sync::Arc};

use axum::extract::State;
use ruma::{OwnedRoomId, OwnedUserId, UInt, api::client::membership::get_mutual_rooms};

use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
    services::Services,
};

/// The rooms `user` and `other` are both joined to, sorted (400 when `from` is given, 422 when
/// `other` is the caller, as Synapse).
async fn mutual(
    services: &Arc<Services>,
    user: OwnedUserId,
    other: OwnedUserId,
    from: Option<String>,
) -> Result<Vec<OwnedRoomId>> {
    if from.is_some() {
        return Err(Error::invalid_param("Unknown pagination token"));
    }
    if user == other {
        return Err(Error::new(
            http::StatusCode::UNPROCESSABLE_ENTITY,
            "M_INVALID_PARAM",
            "You cannot request a list of shared rooms with yourself",
        ));
    }
    services
        .run(move |s| {
            let mine: BTreeSet<OwnedRoomId> =
                s.membership.joined_room_ids(&user)?.into_iter().collect();
            let theirs: BTreeSet<OwnedRoomId> =
                s.membership.joined_room_ids(&other)?.into_iter().collect();
            Ok(mine.intersection(&theirs).cloned().collect())
        })
        .await
}

pub async fn stable(
    State(services): State<Arc<Services>>,
    req: Ruma<get_mutual_rooms::v1::Request>,
) -> Result<RumaResponse<get_mutual_rooms::v1::Response>> {
    let user = req.user()?.clone();
    let rooms = mutual(&services, user, req.body.user_id, req.body.from).await?;
    Ok(get_mutual_rooms::v1::Response::new(UInt::new_saturating(rooms.len() as u64), rooms).into())
}

pub async fn unstable(
    State(services): State<Arc<Services>>,
    req: Ruma<get_mutual_rooms::unstable::Request>,
) -> Result<RumaResponse<get_mutual_rooms::unstable::Response>> {
    let user = req.user()?.clone();
    let rooms = mutual(&services, user, req.body.user_id, req.body.from).await?;
    Ok(get_mutual_rooms::unstable::Response::new(rooms).into())
}
