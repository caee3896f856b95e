//! Listing snapshots: what lets page-number pagination neither skip nor
//! repeat a record while others are created and deleted between pages.
//!
//! The first page of a listing (no `page`, or `page=1`) pins a snapshot of the
//! store's state; later pages of the same listing, by the same caller with the
//! same filters, read against it. Records created afterwards are left out and
//! records deleted afterwards keep their place, since the store keeps deleted
//! rows as tombstones for longer than a snapshot lives. A page asked for with
//! no snapshot on record (expired, or served by another process) reads the
//! current state.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::Principal;
use crate::store::users::ListingSnapshot;

/// How long a listing may take from its first page to its last.
pub const SNAPSHOT_LIFETIME: Duration = Duration::from_secs(10 * 60);
const MAX_SNAPSHOTS: usize = 10_000;

#[derive(Default, Debug)]
pub struct ListingSnapshots {
    entries: Mutex<HashMap<String, (ListingSnapshot, Instant)>>,
}

/// Identifies one listing: who asks, for what, with which filters (the page aside).
pub fn listing_key(principal: &Principal, path: &str, query: Option<&str>) -> String {
    let who = match principal {
        Principal::Admin { token_id } => format!("admin:{token_id}"),
        Principal::Token(token) => format!("token:{}", token.id),
    };
    keyed_listing(&who, path, query, "page")
}

/// The same for any caller and any name of the position parameter
/// (`page` in the v4 API, `startIndex` in SCIM).
pub fn keyed_listing(who: &str, path: &str, query: Option<&str>, position: &str) -> String {
    let mut params: Vec<(String, String)> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .filter(|(name, _)| name != position)
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
    params.sort();
    let filters: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("{who} {path}?{filters}")
}

impl ListingSnapshots {
    /// The snapshot to read `page` against: a new one for the first page, the
    /// pinned one for later pages while it lives, `None` when there is none.
    pub fn pinned(&self, key: &str, page: u32) -> Option<ListingSnapshot> {
        if page <= 1 {
            return None;
        }
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .get(key)
            .filter(|(_, expires)| Instant::now() < *expires)
            .map(|(snapshot, _)| snapshot.clone())
    }

    /// Pins `snapshot` as the reference of the listing `key`.
    pub fn pin(&self, key: String, snapshot: ListingSnapshot) {
        let now = Instant::now();
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= MAX_SNAPSHOTS {
            entries.retain(|_, (_, expires)| now < *expires);
        }
        if entries.len() >= MAX_SNAPSHOTS {
            // Still full of live listings: drop the one closest to expiry.
            let oldest = entries
                .iter()
                .min_by_key(|(_, (_, expires))| *expires)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, (snapshot, now + SNAPSHOT_LIFETIME));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TokenId;

    fn admin() -> Principal {
        Principal::Admin {
            token_id: TokenId::generate(),
        }
    }

    #[test]
    fn the_page_does_not_change_the_key_but_filters_do() {
        let who = admin();
        let first = listing_key(&who, "/u", Some("per_page=10&email=a%40b.c"));
        let later = listing_key(&who, "/u", Some("email=a%40b.c&per_page=10&page=3"));
        assert_eq!(first, later);
        assert_ne!(
            first,
            listing_key(&who, "/u", Some("per_page=20&email=a%40b.c"))
        );
        assert_ne!(
            first,
            listing_key(&admin(), "/u", Some("per_page=10&email=a%40b.c"))
        );
    }

    #[test]
    fn later_pages_read_the_pinned_snapshot() {
        let snapshots = ListingSnapshots::default();
        let snapshot = ListingSnapshot::taken(42, vec![7]);
        snapshots.pin("k".into(), snapshot.clone());
        assert_eq!(snapshots.pinned("k", 1), None, "a first page starts afresh");
        assert_eq!(snapshots.pinned("k", 2), Some(snapshot));
        assert_eq!(snapshots.pinned("other", 2), None);
    }
}
