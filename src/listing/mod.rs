//! What lets page-number pagination (the v4 API's `page`, SCIM's
//! `startIndex`) neither skip nor repeat a record while others are created
//! and deleted between pages, whichever process serves each page.
//!
//! The first page of a listing (no position, or the first one) takes a
//! snapshot of the store's state (`store::snapshot`) and reads against it;
//! when more pages may follow, it pins the snapshot in the database under
//! the caller and a [`ListingKey`]. Later pages of the same listing, by the
//! same caller with the same parameters, read against the pinned snapshot,
//! in this process or any other on the database. A later page with no
//! snapshot on record (it expired) reads the present state.
//!
//! Why the database and not the request: these are page numbers, so a
//! client's next request carries nothing of the server's but the same query
//! with another number. A snapshot is two integers, so a pinned listing is
//! one small row; each caller keeps at most a few, whatever it sends.

use sha2::{Digest, Sha256};

use crate::domain::Timestamp;
use crate::store::snapshot::{ListingScope, ListingSnapshot, PinKey};
use crate::store::{Page, Store, StoreResult};

pub use crate::store::snapshot::SNAPSHOT_SECONDS;

/// Identifies one listing: who asks, and a digest of what for (the path and
/// the sorted query parameters, the position aside). Its size does not
/// depend on what the client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingKey {
    caller: String,
    listing: String,
}

impl ListingKey {
    /// `caller` names who lists (its size is the caller's, not the
    /// request's); `position` is the parameter that moves through the
    /// listing (`page`, `startIndex`).
    pub fn new(caller: String, path: &str, query: Option<&str>, position: &str) -> Self {
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
            caller,
            listing: hex::encode(digest.finalize()),
        }
    }

    fn pin_key(&self) -> PinKey<'_> {
        PinKey {
            caller: &self.caller,
            listing: &self.listing,
        }
    }
}

/// The snapshot one page reads, and where it is pinned.
#[derive(Debug)]
pub struct Reading {
    key: ListingKey,
    pub snapshot: ListingSnapshot,
    /// Taken for this page rather than read from a pin.
    fresh: bool,
}

/// The snapshot for a page of the listing `key` over `owner`'s rows of
/// `scope`: the pinned one for a later page while it lives, else a new one.
pub async fn open(
    store: &Store,
    key: ListingKey,
    first_page: bool,
    scope: ListingScope,
    owner: &str,
) -> StoreResult<Reading> {
    if !first_page
        && let Some(snapshot) = store
            .pinned_snapshot(&key.pin_key(), Timestamp::now())
            .await?
    {
        return Ok(Reading {
            key,
            snapshot,
            fresh: false,
        });
    }
    let snapshot = store.take_snapshot(scope, owner).await?;
    Ok(Reading {
        key,
        snapshot,
        fresh: true,
    })
}

/// How a page came out, for deciding whether later pages may be asked for.
#[derive(Debug, Clone, Copy)]
pub struct PageOutcome {
    /// Records before this page.
    pub before: u64,
    /// Records on this page.
    pub shown: u64,
    /// Records asked for on this page.
    pub asked: u64,
    /// Records in the whole listing.
    pub total: u64,
}

impl PageOutcome {
    /// Whether a client may ask for a later page: this one did not reach
    /// the end, or was full (an SDK then asks for the next, empty one).
    pub fn continues(&self) -> bool {
        self.before + self.shown < self.total || (self.asked > 0 && self.shown == self.asked)
    }
}

impl<T> From<&Page<T>> for PageOutcome {
    fn from(page: &Page<T>) -> Self {
        PageOutcome {
            before: u64::try_from(page.request.offset()).unwrap_or(0),
            shown: page.items.len() as u64,
            asked: u64::from(page.request.per_page),
            total: page.total_count,
        }
    }
}

impl Reading {
    /// Pins a snapshot taken for this page when later pages may follow, so
    /// that they read what this one read. A listing read whole in one page
    /// pins nothing.
    pub async fn keep_for_later_pages(
        &self,
        store: &Store,
        page: impl Into<PageOutcome>,
    ) -> StoreResult<()> {
        if self.fresh && page.into().continues() {
            store
                .pin_snapshot(&self.key.pin_key(), &self.snapshot, Timestamp::now())
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_position_does_not_change_the_key_but_filters_do() {
        let key = |who: &str, query: &str| ListingKey::new(who.into(), "/u", Some(query), "page");
        let first = key("a", "per_page=10&email=a%40b.c");
        assert_eq!(first, key("a", "email=a%40b.c&per_page=10&page=3"));
        assert_ne!(first, key("a", "per_page=20&email=a%40b.c"));
        assert_ne!(first, key("b", "per_page=10&email=a%40b.c"));
        assert_ne!(
            ListingKey::new("a".into(), "/u", Some("ab=c"), "page"),
            ListingKey::new("a".into(), "/u", Some("a=bc"), "page")
        );
        let scim = |query: &str| ListingKey::new("s".into(), "/Users", Some(query), "startIndex");
        assert_eq!(scim("count=5"), scim("startIndex=6&count=5"));
    }

    #[test]
    fn junk_parameters_do_not_grow_the_key() {
        let junk = format!("x={}", "j".repeat(100_000));
        let key = ListingKey::new("a".into(), "/u", Some(&junk), "page");
        assert_eq!(key.listing.len(), 64);
    }

    #[test]
    fn a_listing_continues_unless_its_page_reached_a_short_end() {
        let page = |before, shown, asked, total| PageOutcome {
            before,
            shown,
            asked,
            total,
        };
        assert!(page(0, 10, 10, 25).continues());
        assert!(page(0, 10, 10, 10).continues(), "a full page");
        assert!(!page(0, 7, 10, 7).continues());
        assert!(!page(0, 0, 10, 0).continues());
        assert!(!page(20, 5, 10, 25).continues());
        assert!(page(0, 3, 10, 25).continues(), "a page cut short");
    }
}
