//! Offset paging and sorting shared by the admin lists (users, rooms): pure functions.

use std::cmp::Ordering;

use crate::error::{Error, Result};

/// The direction of a sorted list: `f` (the order's natural direction) or `b` (reversed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dir {
    #[default]
    Forward,
    Backward,
}

impl Dir {
    /// Parses the `dir` query parameter (`f` or `b`); anything else is 400 `M_INVALID_PARAM`.
    pub fn parse(value: Option<&str>) -> Result<Self> {
        match value {
            None | Some("f") => Ok(Self::Forward),
            Some("b") => Ok(Self::Backward),
            Some(other) => Err(Error::invalid_param(format!("Unknown direction: {other}"))),
        }
    }
}

/// One page of a list, with where the next and previous pages start (offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The number of entries of the whole list (every page).
    pub total: usize,
    /// The offset of the next page, when there are entries after this one.
    pub next: Option<usize>,
    /// The offset of the previous page, when this one does not start at 0.
    pub prev: Option<usize>,
}

/// Sorts `items` by `cmp` in `dir` (a stable sort: `cmp` should break ties itself) and cuts the
/// page of at most `limit` entries starting at offset `from`.
pub fn sorted_page<T>(
    mut items: Vec<T>,
    cmp: impl Fn(&T, &T) -> Ordering,
    dir: Dir,
    from: usize,
    limit: usize,
) -> Page<T> {
    items.sort_by(|a, b| match dir {
        Dir::Forward => cmp(a, b),
        Dir::Backward => cmp(b, a),
    });
    let total = items.len();
    let start = from.min(total);
    let end = start.saturating_add(limit).min(total);
    let page: Vec<T> = items.drain(start..end).collect();
    Page {
        items: page,
        total,
        next: (end < total).then_some(end),
        prev: (start > 0).then(|| start.saturating_sub(limit)),
    }
}

/// Parses an offset (`from`): a non-negative integer; else 400 `M_INVALID_PARAM`.
pub fn parse_offset(value: Option<&str>, name: &str) -> Result<Option<usize>> {
    value
        .map(|v| {
            v.parse::<usize>()
                .map_err(|_| Error::invalid_param(format!("{name} must be a non-negative integer")))
        })
        .transpose()
}

/// Parses a page size (`limit`, default 100): a positive integer; else 400 `M_INVALID_PARAM`.
pub fn parse_limit(value: Option<&str>) -> Result<usize> {
    match parse_offset(value, "limit")? {
        None => Ok(DEFAULT_LIMIT),
        Some(0) => Err(Error::invalid_param("limit must be positive")),
        Some(n) => Ok(n),
    }
}

/// The page size when none is asked, as Synapse's admin API.
pub const DEFAULT_LIMIT: usize = 100;

#[cfg(test)]
mod tests {
    use super::*;

    fn page(items: &[u32], dir: Dir, from: usize, limit: usize) -> Page<u32> {
        sorted_page(items.to_vec(), |a, b| a.cmp(b), dir, from, limit)
    }

    #[test]
    fn first_page_has_next_and_no_prev() {
        let p = page(&[5, 1, 4, 2, 3], Dir::Forward, 0, 2);
        assert_eq!(p.items, vec![1, 2]);
        assert_eq!((p.total, p.next, p.prev), (5, Some(2), None));
    }

    #[test]
    fn middle_and_last_pages() {
        let p = page(&[5, 1, 4, 2, 3], Dir::Forward, 2, 2);
        assert_eq!(p.items, vec![3, 4]);
        assert_eq!((p.next, p.prev), (Some(4), Some(0)));
        let p = page(&[5, 1, 4, 2, 3], Dir::Forward, 4, 2);
        assert_eq!(p.items, vec![5]);
        assert_eq!((p.next, p.prev), (None, Some(2)));
    }

    #[test]
    fn backward_reverses_the_order() {
        let p = page(&[5, 1, 4, 2, 3], Dir::Backward, 0, 3);
        assert_eq!(p.items, vec![5, 4, 3]);
        assert_eq!(p.next, Some(3));
    }

    #[test]
    fn an_offset_past_the_end_is_an_empty_page() {
        let p = page(&[1, 2], Dir::Forward, 10, 5);
        assert!(p.items.is_empty());
        assert_eq!((p.total, p.next), (2, None));
    }

    #[test]
    fn dir_and_offsets_are_checked() {
        assert_eq!(Dir::parse(None).unwrap(), Dir::Forward);
        assert_eq!(Dir::parse(Some("b")).unwrap(), Dir::Backward);
        assert_eq!(
            Dir::parse(Some("x")).unwrap_err().errcode,
            "M_INVALID_PARAM"
        );
        assert_eq!(parse_offset(Some("12"), "from").unwrap(), Some(12));
        assert_eq!(
            parse_offset(Some("-1"), "from").unwrap_err().errcode,
            "M_INVALID_PARAM"
        );
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(
            parse_limit(Some("0")).unwrap_err().errcode,
            "M_INVALID_PARAM"
        );
    }
}
