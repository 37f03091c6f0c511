//! `GET /_synapse/admin/v2/users`: filtering and sorting local accounts (pure), and the JSON of a
//! user as the admin API shows it.

use std::cmp::Ordering;

use ruma::{OwnedUserId, UserId};
use serde_json::{Value, json};

use super::paging::{Dir, Page, sorted_page};
use crate::{
    error::{Error, Result},
    services::users::Account,
};

/// The sort orders of the user list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserOrder {
    /// By user id (the default).
    #[default]
    Name,
    Displayname,
    CreationTs,
    Admin,
    Deactivated,
}

impl UserOrder {
    pub fn parse(value: Option<&str>) -> Result<Self> {
        Ok(match value {
            None | Some("name") => Self::Name,
            Some("displayname") => Self::Displayname,
            Some("creation_ts") => Self::CreationTs,
            Some("admin") => Self::Admin,
            Some("deactivated") => Self::Deactivated,
            Some(other) => {
                return Err(Error::invalid_param(format!(
                    "Unknown value for order_by: {other}"
                )));
            }
        })
    }
}

/// What the list shows.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    pub from: usize,
    pub limit: usize,
    /// Keeps users whose localpart or displayname contains it (case-insensitive).
    pub name: Option<String>,
    /// Keeps users whose id contains it (ignored when `name` is given).
    pub user_id: Option<String>,
    /// Include deactivated accounts (default: no).
    pub deactivated: bool,
    /// Only admins (`Some(true)`) or only non-admins (`Some(false)`).
    pub admins: Option<bool>,
    pub order_by: UserOrder,
    pub dir: Dir,
}

fn matches(q: &UserQuery, user: &UserId, account: &Account) -> bool {
    if account.deactivated && !q.deactivated {
        return false;
    }
    if q.admins.is_some_and(|a| a != account.admin) {
        return false;
    }
    if let Some(name) = &q.name {
        let name = name.to_lowercase();
        let display = account
            .displayname
            .as_deref()
            .unwrap_or_default()
            .to_lowercase();
        return user.localpart().to_lowercase().contains(&name) || display.contains(&name);
    }
    if let Some(id) = &q.user_id {
        return user.as_str().to_lowercase().contains(&id.to_lowercase());
    }
    true
}

/// Display names compare case-insensitively; none sorts first.
fn lower(name: &Option<String>) -> Option<String> {
    name.as_deref().map(str::to_lowercase)
}

fn compare(order: UserOrder, a: &(OwnedUserId, Account), b: &(OwnedUserId, Account)) -> Ordering {
    let by = match order {
        UserOrder::Name => Ordering::Equal,
        UserOrder::Displayname => lower(&a.1.displayname).cmp(&lower(&b.1.displayname)),
        UserOrder::CreationTs => a.1.created_ts.cmp(&b.1.created_ts),
        UserOrder::Admin => a.1.admin.cmp(&b.1.admin),
        UserOrder::Deactivated => a.1.deactivated.cmp(&b.1.deactivated),
    };
    // Ties (and `name` itself) go by user id, so pages are stable.
    by.then_with(|| a.0.cmp(&b.0))
}

/// The page of `accounts` that `q` asks for.
pub fn list(accounts: Vec<(OwnedUserId, Account)>, q: &UserQuery) -> Page<(OwnedUserId, Account)> {
    let kept: Vec<_> = accounts
        .into_iter()
        .filter(|(u, a)| matches(q, u, a))
        .collect();
    sorted_page(
        kept,
        |a, b| compare(q.order_by, a, b),
        q.dir,
        q.from,
        q.limit,
    )
}

/// A user in the list and in `GET /_synapse/admin/v2/users/{userId}` (`creation_ts` in ms), with
/// what admins set on it (erased, shadow-banned, locked, suspended).
pub fn user_json(s: &crate::services::Services, user: &UserId, account: &Account) -> Value {
    json!({
        "name": user,
        "displayname": account.displayname,
        "avatar_url": account.avatar_url,
        "is_guest": false,
        "admin": account.admin,
        "deactivated": account.deactivated,
        "erased": s.erased_users.contains(user),
        "shadow_banned": s.shadow_bans.contains(user),
        "locked": s.moderation.locked.contains(user),
        "suspended": s.moderation.suspended.contains(user),
        "user_type": null,
        "appservice_id": null,
        "creation_ts": account.created_ts,
        "threepids": s.threepids.of_user(user).unwrap_or_default(),
        "external_ids": s.external_ids.of_user(user).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str, ts: u64, admin: bool, deactivated: bool) -> Account {
        Account {
            displayname: Some(name.to_owned()),
            created_ts: ts,
            admin,
            deactivated,
            ..Default::default()
        }
    }

    fn sample() -> Vec<(OwnedUserId, Account)> {
        vec![
            (
                OwnedUserId::try_from("@carol:x").unwrap(),
                account("Zed", 3, false, false),
            ),
            (
                OwnedUserId::try_from("@alice:x").unwrap(),
                account("Mallory", 2, true, false),
            ),
            (
                OwnedUserId::try_from("@bob:x").unwrap(),
                account("Bobby", 1, false, true),
            ),
            (
                OwnedUserId::try_from("@dave:x").unwrap(),
                account("Alice's friend", 4, false, false),
            ),
        ]
    }

    fn names(p: &Page<(OwnedUserId, Account)>) -> Vec<&str> {
        p.items.iter().map(|(u, _)| u.localpart()).collect()
    }

    fn query() -> UserQuery {
        UserQuery {
            limit: 100,
            ..Default::default()
        }
    }

    #[test]
    fn deactivated_are_hidden_unless_asked() {
        assert_eq!(names(&list(sample(), &query())), ["alice", "carol", "dave"]);
        let q = UserQuery {
            deactivated: true,
            ..query()
        };
        assert_eq!(
            names(&list(sample(), &q)),
            ["alice", "bob", "carol", "dave"]
        );
    }

    #[test]
    fn name_matches_localpart_or_displayname() {
        let q = UserQuery {
            name: Some("ALICE".into()),
            ..query()
        };
        assert_eq!(names(&list(sample(), &q)), ["alice", "dave"]);
        let q = UserQuery {
            user_id: Some("@car".into()),
            ..query()
        };
        assert_eq!(names(&list(sample(), &q)), ["carol"]);
    }

    #[test]
    fn sorts_by_each_order_and_direction() {
        let q = UserQuery {
            order_by: UserOrder::Displayname,
            ..query()
        };
        assert_eq!(names(&list(sample(), &q)), ["dave", "alice", "carol"]);
        let mut lowercase = sample();
        lowercase[0].1.displayname = Some("zed".into());
        lowercase[1].1.displayname = Some("Zee".into());
        assert_eq!(names(&list(lowercase, &q)), ["dave", "carol", "alice"]);
        let q = UserQuery {
            order_by: UserOrder::CreationTs,
            dir: Dir::Backward,
            ..query()
        };
        assert_eq!(names(&list(sample(), &q)), ["dave", "carol", "alice"]);
        let q = UserQuery {
            order_by: UserOrder::Admin,
            dir: Dir::Backward,
            ..query()
        };
        assert_eq!(names(&list(sample(), &q))[0], "alice");
        assert_eq!(
            UserOrder::parse(Some("bogus")).unwrap_err().errcode,
            "M_INVALID_PARAM"
        );
    }

    #[test]
    fn admins_filter_and_paging() {
        let q = UserQuery {
            admins: Some(false),
            limit: 1,
            from: 1,
            ..query()
        };
        let page = list(sample(), &q);
        assert_eq!(names(&page), ["dave"]);
        assert_eq!((page.total, page.next, page.prev), (2, None, Some(0)));
    }
}
