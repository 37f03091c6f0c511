//! The two orders of results and the `next_batch` token.
//!
//! `rank`: more occurrences of the search words first, then the most recent; `recent`: the most
//! recent first. Recency is the event's stream position, unique across the server, so every
//! result has a distinct sort key and a token naming the last result given ("after this key")
//! pages without duplicates or gaps, whatever is sent meanwhile (a new event sorts before the
//! token in `recent` order; in `rank` order it lands on the side its rank says).

use std::cmp::Ordering;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderBy {
    Rank,
    Recent,
}

/// Where a result sorts: its rank (occurrences of the search words) and stream position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    pub rank: u64,
    pub pos: u64,
}

impl OrderBy {
    /// `Less`: `a` comes first.
    pub fn compare(self, a: &SortKey, b: &SortKey) -> Ordering {
        match self {
            OrderBy::Rank => b.rank.cmp(&a.rank).then(b.pos.cmp(&a.pos)),
            OrderBy::Recent => b.pos.cmp(&a.pos),
        }
    }
}

/// A `next_batch` token: the order it was made for and the last result given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchToken {
    pub order: OrderBy,
    pub last: SortKey,
}

impl BatchToken {
    /// `k<rank>_<pos>` in rank order, `t<pos>` in recent order.
    pub fn encode(&self) -> String {
        match self.order {
            OrderBy::Rank => format!("k{}_{}", self.last.rank, self.last.pos),
            OrderBy::Recent => format!("t{}", self.last.pos),
        }
    }

    /// Parses a token; it must have been made for `order` (400 `M_INVALID_PARAM` otherwise).
    pub fn parse(token: &str, order: OrderBy) -> Result<Self> {
        let bad = || Error::invalid_param("Invalid next_batch token");
        let number = |s: &str| -> Result<u64> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            s.parse().map_err(|_| bad())
        };
        let last = match (order, token.split_at_checked(1).ok_or_else(bad)?) {
            (OrderBy::Rank, ("k", rest)) => {
                let (rank, pos) = rest.split_once('_').ok_or_else(bad)?;
                SortKey {
                    rank: number(rank)?,
                    pos: number(pos)?,
                }
            }
            (OrderBy::Recent, ("t", pos)) => SortKey {
                rank: 0,
                pos: number(pos)?,
            },
            _ => return Err(bad()),
        };
        Ok(Self { order, last })
    }

    /// Whether `key` comes after the token (on a later page).
    pub fn is_before(&self, key: &SortKey) -> bool {
        self.order.compare(&self.last, key) == Ordering::Less
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(rank: u64, pos: u64) -> SortKey {
        SortKey { rank, pos }
    }

    #[test]
    fn rank_order_is_rank_then_recent() {
        let mut keys = vec![key(1, 10), key(3, 2), key(1, 50), key(3, 7)];
        keys.sort_by(|a, b| OrderBy::Rank.compare(a, b));
        assert_eq!(keys, [key(3, 7), key(3, 2), key(1, 50), key(1, 10)]);
        keys.sort_by(|a, b| OrderBy::Recent.compare(a, b));
        assert_eq!(keys, [key(1, 50), key(1, 10), key(3, 7), key(3, 2)]);
    }

    #[test]
    fn tokens_round_trip_and_page_without_gaps() {
        let token = BatchToken {
            order: OrderBy::Rank,
            last: key(3, 2),
        };
        let parsed = BatchToken::parse(&token.encode(), OrderBy::Rank).unwrap();
        assert_eq!(parsed, token);
        assert!(parsed.is_before(&key(1, 50)));
        assert!(parsed.is_before(&key(3, 1)));
        assert!(!parsed.is_before(&key(3, 2)));
        assert!(!parsed.is_before(&key(3, 7)));
        let recent = BatchToken {
            order: OrderBy::Recent,
            last: key(0, 10),
        };
        assert_eq!(
            BatchToken::parse(&recent.encode(), OrderBy::Recent).unwrap(),
            recent
        );
        assert!(recent.is_before(&key(9, 9)));
        assert!(!recent.is_before(&key(0, 11)));
    }

    #[test]
    fn bad_tokens_are_refused() {
        for bad in [
            "",
            "k",
            "k1",
            "k1_",
            "k_2",
            "kx_2",
            "t",
            "t-1",
            "t1x",
            "s1_0",
            "k1_2_3",
            "t99999999999999999999999",
        ] {
            assert!(BatchToken::parse(bad, OrderBy::Rank).is_err(), "{bad}");
            assert!(BatchToken::parse(bad, OrderBy::Recent).is_err(), "{bad}");
        }
        assert!(BatchToken::parse("t5", OrderBy::Rank).is_err());
        assert!(BatchToken::parse("k1_5", OrderBy::Recent).is_err());
        assert!(BatchToken::parse("k1_2_3", OrderBy::Rank).is_err());
    }
}
