//! Stored /sync filters.

use ruma::UserId;
use serde_json::Value;

use crate::{
    error::Result,
    storage::{Db, Map, keys::Key},
    util::random_string,
};

/// user, filter id → filter JSON.
pub const FILTERS: Map = Map("filters");
pub const MAPS: &[Map] = &[FILTERS];

pub struct Filters {
    db: Db,
}

impl Filters {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn create(&self, user: &UserId, filter: &Value) -> Result<String> {
        let id = random_string(12);
        self.db.put(
            FILTERS,
            Key::new().str(user.as_str()).str(&id).build(),
            serde_json::to_vec(filter).expect("JSON"),
        )?;
        Ok(id)
    }

    pub fn get(&self, user: &UserId, id: &str) -> Result<Option<Value>> {
        Ok(self
            .db
            .get_json(FILTERS, &Key::new().str(user.as_str()).str(id).build())?)
    }
}
