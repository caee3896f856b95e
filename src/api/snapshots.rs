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

use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::store::users::ListingSnapshot;

/// How long a listing may take from its first page to its last.
pub const SNAPSHOT_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Listings pinned at once, in all.
const MAX_SNAPSHOTS: usize = 1_000;
/// Listings one caller may have pinned at once; its oldest makes way, so
/// one caller cannot push out everyone else's.
const MAX_SNAPSHOTS_PER_CALLER: usize = 16;

/// Identifies one listing: who asks, and a digest of what for (the path and
/// the sorted query parameters, the position aside). Its size does not
/// depend on what the client sends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListingKey {
    who: String,
    listing: [u8; 32],
}

#[derive(Default, Debug)]
pub struct ListingSnapshots {
    entries: Mutex<HashMap<String, Vec<Pinned>>>,
}

#[derive(Debug)]
struct Pinned {
    listing: [u8; 32],
    snapshot: ListingSnapshot,
    expires: Instant,
}

pub fn listing_key(principal: &Principal, path: &str, query: Option<&str>) -> ListingKey {
    let who = match principal {
        Principal::Admin { token_id } => format!("admin:{token_id}"),
        Principal::Token(token) => format!("token:{}", token.id),
    };
    keyed_listing(&who, path, query, "page")
}

/// The same for any caller and any name of the position parameter
/// (`page` in the v4 API, `startIndex` in SCIM).
pub fn keyed_listing(who: &str, path: &str, query: Option<&str>, position: &str) -> ListingKey {
    let mut params: Vec<(String, String)> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .filter(|(name, _)| name != position)
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
    params.sort();
    let mut digest = Sha256::new();
    digest.update(path.as_bytes());
    for (name, value) in params {
        // Lengths first, so no two parameter lists hash the same bytes.
        for part in [name, value] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part.as_bytes());
        }
    }
    ListingKey {
        who: who.to_string(),
        listing: digest.finalize().into(),
    }
}

impl ListingSnapshots {
    /// The snapshot to read `page` against: a new one for the first page, the
    /// pinned one for later pages while it lives, `None` when there is none.
    pub fn pinned(&self, key: &ListingKey, page: u32) -> Option<ListingSnapshot> {
        if page <= 1 {
            return None;
        }
        let entries = self.lock();
        let now = Instant::now();
        entries
            .get(&key.who)?
            .iter()
            .find(|p| p.listing == key.listing && now < p.expires)
            .map(|p| p.snapshot.clone())
    }

    /// Pins `snapshot` as the reference of the listing `key`.
    pub fn pin(&self, key: ListingKey, snapshot: ListingSnapshot) {
        let now = Instant::now();
        let mut entries = self.lock();
        let total: usize = entries.values().map(Vec::len).sum();
        if total >= MAX_SNAPSHOTS {
            for listings in entries.values_mut() {
                listings.retain(|p| now < p.expires);
            }
            entries.retain(|_, listings| !listings.is_empty());
        }
        let total: usize = entries.values().map(Vec::len).sum();
        if total >= MAX_SNAPSHOTS {
            // Still full of live listings: drop the one closest to expiry.
            let oldest = entries
                .iter()
                .flat_map(|(who, listings)| listings.iter().map(move |p| (p.expires, who)))
                .min()
                .map(|(_, who)| who.clone());
            if let Some(who) = oldest
                && let Some(listings) = entries.get_mut(&who)
            {
                listings.sort_by_key(|p| p.expires);
                listings.remove(0);
            }
        }
        let listings = entries.entry(key.who).or_default();
        listings.retain(|p| p.listing != key.listing && now < p.expires);
        if listings.len() >= MAX_SNAPSHOTS_PER_CALLER {
            listings.sort_by_key(|p| p.expires);
            listings.remove(0);
        }
        listings.push(Pinned {
            listing: key.listing,
            snapshot,
            expires: now + SNAPSHOT_LIFETIME,
        });
    }

    /// How many listings are pinned, in all.
    pub fn len(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Pinned>>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        let key = keyed_listing("k", "/u", None, "page");
        snapshots.pin(key.clone(), snapshot.clone());
        assert_eq!(
            snapshots.pinned(&key, 1),
            None,
            "a first page starts afresh"
        );
        assert_eq!(snapshots.pinned(&key, 2), Some(snapshot));
        let other = keyed_listing("other", "/u", None, "page");
        assert_eq!(snapshots.pinned(&other, 2), None);
    }

    #[test]
    fn junk_parameters_cannot_grow_the_cache() {
        let snapshots = ListingSnapshots::default();
        let victim = keyed_listing("victim", "/u", Some("email=a"), "page");
        snapshots.pin(victim.clone(), ListingSnapshot::taken(1, vec![]));
        for i in 0..5_000 {
            let junk = format!("junk{i}={}", "x".repeat(1_000));
            let key = keyed_listing("attacker", "/u", Some(&junk), "page");
            snapshots.pin(key, ListingSnapshot::taken(i, vec![]));
        }
        assert_eq!(snapshots.len(), MAX_SNAPSHOTS_PER_CALLER + 1);
        assert!(
            snapshots.pinned(&victim, 2).is_some(),
            "another caller's listing survives"
        );
        for who in 0..MAX_SNAPSHOTS * 2 {
            let key = keyed_listing(&format!("caller{who}"), "/u", None, "page");
            snapshots.pin(key, ListingSnapshot::taken(1, vec![]));
        }
        assert_eq!(snapshots.len(), MAX_SNAPSHOTS);
    }
}
