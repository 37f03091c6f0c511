//! `POST /search`: server-side search of room history (`services/search/`).

use std::sync::Arc;

use axum::extract::State;
use ruma::api::client::search::search_events;

use crate::{
    api::{
        always_sent::{self, Filled},
        ruma_wrapper::Ruma,
    },
    error::{Error, Result},
    services::{Services, search::results},
};

pub async fn search(
    State(services): State<Arc<Services>>,
    req: Ruma<search_events::v3::Request>,
) -> Result<Filled<search_events::v3::Response>> {
    let (user, device) = (req.user()?.clone(), req.device()?.clone());
    // ruma fills in a default `event_context`: the raw body tells whether the client asked for one.
    let with_context = req
        .json
        .as_ref()
        .and_then(|body| body.pointer("/search_categories/room_events/event_context"))
        .is_some_and(|v| !v.is_null());
    let body = req.body;
    let Some(criteria) = body.search_categories.room_events else {
        return Err(Error::bad_json(
            "search_categories has no known category (only room_events is supported)",
        ));
    };
    let next_batch = body.next_batch;
    services
        .run(move |s| {
            let request = results::Search {
                user: &user,
                device: device.as_str(),
                criteria: &criteria,
                next_batch: next_batch.as_deref(),
                with_context,
            };
            let room_events = results::search(s, &request)?;
            let mut categories = search_events::v3::ResultCategories::new();
            categories.room_events = room_events;
            Ok(Filled::new(
                search_events::v3::Response::new(categories),
                always_sent::search,
            ))
        })
        .await
}
