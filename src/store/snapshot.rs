//! Listing snapshots: what a paged listing shows on every page, kept in the
//! database so that any process can serve any page.
//!
//! A snapshot is two numbers: the owner's newest row (`last_seq`) and how
//! many of its deletions were committed (`deletions`) when the listing's
//! first page was read. Each deletion takes the owner's next number in
//! `listing_owners` while holding that row, so numbers follow commit order:
//! a row deleted after the snapshot has a higher number than the snapshot
//! counted, whenever its transaction began. Pages read against the snapshot
//! show exactly the rows of that moment: rows created since are left out
//! (creations of one owner are ordered by the same kind of lock), rows
//! deleted since are still shown, since their tombstones outlive any
//! snapshot. No list of tombstones is carried, however many there are.
//!
//! The first page pins its snapshot in `listing_snapshots` under the caller
//! and a digest of the listing, for [`SNAPSHOT_SECONDS`]; each caller keeps
//! at most [`MAX_SNAPSHOTS_PER_CALLER`], so no query string can grow the table.

use tracing::instrument;

use super::{Bind, Store, StoreResult, with_pool, with_writer};
use crate::domain::Timestamp;

/// How long a listing may take from its first page to its last.
pub const SNAPSHOT_SECONDS: i64 = 10 * 60;
/// Listings one caller may have pinned at once; its oldest makes way.
pub const MAX_SNAPSHOTS_PER_CALLER: i64 = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingSnapshot {
    pub last_seq: i64,
    /// Deletions counted at the snapshot, or `None` for the present: every
    /// deleted row is left out.
    pub deletions: Option<i64>,
}

impl ListingSnapshot {
    /// The rows that exist now, without any pinned past.
    pub fn present() -> Self {
        Self {
            last_seq: i64::MAX,
            deletions: None,
        }
    }

    /// The SQL condition for rows of this snapshot, with `$N` placeholders
    /// numbered after the binds already in `binds`, to which its values are added.
    pub(crate) fn condition(&self, binds: &mut Vec<Bind>) -> String {
        binds.push(Bind::Int(self.last_seq));
        let last = binds.len();
        match self.deletions {
            None => format!("seq <= ${last} AND deleted_at IS NULL"),
            Some(counted) => {
                binds.push(Bind::Int(counted));
                // `deleted_at` first: a tombstone always has a number, but a
                // live row never needs one read.
                format!(
                    "seq <= ${last} AND (deleted_at IS NULL OR deleted_no > ${})",
                    last + 1
                )
            }
        }
    }

    /// The highest deletion number the snapshot leaves out (tombstones made
    /// before deletions were numbered are numbered 0).
    pub fn deletions_hidden(&self) -> i64 {
        self.deletions.unwrap_or(i64::MAX)
    }
}

/// The tables a listing can be pinned over, with the column that scopes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListingScope {
    /// `access_users` of one account.
    AccessUsers,
    /// `scim_users` of one identity provider.
    ScimUsers,
}

impl ListingScope {
    fn table_and_column(self) -> (&'static str, &'static str) {
        match self {
            ListingScope::AccessUsers => ("access_users", "account_id"),
            ListingScope::ScimUsers => ("scim_users", "idp_id"),
        }
    }

    pub(super) fn name(self) -> &'static str {
        self.table_and_column().0
    }
}

/// Takes the owner's next deletion number (`$1` scope, `$2` owner) and holds
/// the owner's row until the transaction ends.
pub(super) const NEXT_DELETION: &str = "INSERT INTO listing_owners (scope, owner, deletions) VALUES ($1, $2, 1) \
     ON CONFLICT (scope, owner) DO UPDATE SET deletions = listing_owners.deletions + 1 \
     RETURNING deletions";

/// Holds the owner's row (`$1` scope, `$2` owner) until the transaction ends,
/// so that rows it then creates take `seq` values in commit order.
pub(super) const HOLD_OWNER: &str = "INSERT INTO listing_owners (scope, owner, deletions) VALUES ($1, $2, 0) \
     ON CONFLICT (scope, owner) DO UPDATE SET deletions = listing_owners.deletions";

/// Where a listing's snapshot is pinned: who lists, and a digest of what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinKey<'a> {
    pub caller: &'a str,
    pub listing: &'a str,
}

impl Store {
    /// The rows of `scope` as they are now: the newest `seq` and the
    /// deletions counted, read in one transaction.
    #[instrument(skip_all)]
    pub async fn take_snapshot(
        &self,
        scope: ListingScope,
        owner: &str,
    ) -> StoreResult<ListingSnapshot> {
        let (table, column) = scope.table_and_column();
        let newest = format!("SELECT MAX(seq) FROM {table} WHERE {column} = $1");
        let counted = "SELECT deletions FROM listing_owners WHERE scope = $1 AND owner = $2";
        let (last, deletions): (Option<i64>, Option<i64>) = with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let deletions = sqlx::query_scalar(counted)
                .bind(scope.name())
                .bind(owner)
                .fetch_optional(&mut *tx)
                .await?;
            let last = sqlx::query_scalar(&newest)
                .bind(owner)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            (last, deletions)
        });
        Ok(ListingSnapshot {
            last_seq: last.unwrap_or(0),
            deletions: Some(deletions.unwrap_or(0)),
        })
    }

    /// The snapshot pinned for `key`, unless it expired by `now`.
    #[instrument(skip_all)]
    pub async fn pinned_snapshot(
        &self,
        key: &PinKey<'_>,
        now: Timestamp,
    ) -> StoreResult<Option<ListingSnapshot>> {
        let sql = "SELECT last_seq, deletions FROM listing_snapshots \
                   WHERE caller = $1 AND listing = $2 AND expires_at > $3";
        let row: Option<(i64, i64)> = with_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(key.caller)
                .bind(key.listing)
                .bind(now.micros())
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(last_seq, deletions)| ListingSnapshot {
            last_seq,
            deletions: Some(deletions),
        }))
    }

    /// Pins `snapshot` for `key` until [`SNAPSHOT_SECONDS`] after `now`; the
    /// caller's expired listings and those past its limit (the ones closest
    /// to expiry) are dropped in the same transaction.
    #[instrument(skip_all)]
    pub async fn pin_snapshot(
        &self,
        key: &PinKey<'_>,
        snapshot: &ListingSnapshot,
        now: Timestamp,
    ) -> StoreResult<()> {
        let pin = "INSERT INTO listing_snapshots (caller, listing, last_seq, deletions, expires_at) \
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT (caller, listing) DO UPDATE SET \
                   last_seq = excluded.last_seq, deletions = excluded.deletions, expires_at = excluded.expires_at";
        let trim = "DELETE FROM listing_snapshots WHERE caller = $1 AND (expires_at <= $2 OR listing NOT IN (\
                      SELECT listing FROM listing_snapshots WHERE caller = $1 \
                      ORDER BY expires_at DESC, listing LIMIT $3))";
        let deletions = snapshot.deletions_hidden();
        with_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(pin)
                .bind(key.caller)
                .bind(key.listing)
                .bind(snapshot.last_seq)
                .bind(deletions)
                .bind(now.plus_seconds(SNAPSHOT_SECONDS).micros())
                .execute(&mut *tx)
                .await?;
            sqlx::query(trim)
                .bind(key.caller)
                .bind(now.micros())
                .bind(MAX_SNAPSHOTS_PER_CALLER)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Removes snapshots that expired by `now`.
    #[instrument(skip_all)]
    pub async fn purge_expired_snapshots(&self, now: Timestamp) -> StoreResult<u64> {
        let purged = with_writer!(self, |pool| {
            sqlx::query("DELETE FROM listing_snapshots WHERE expires_at <= $1")
                .bind(now.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(snapshot: ListingSnapshot, before: usize) -> (String, Vec<i64>) {
        let mut binds = vec![Bind::Int(0); before];
        let sql = snapshot.condition(&mut binds);
        let values = binds[before..]
            .iter()
            .map(|b| match b {
                Bind::Int(n) => *n,
                _ => -1,
            })
            .collect();
        (sql, values)
    }

    #[test]
    fn conditions_number_their_placeholders() {
        let taken = ListingSnapshot {
            last_seq: 42,
            deletions: Some(7),
        };
        assert_eq!(
            rendered(taken, 1),
            (
                "seq <= $2 AND (deleted_at IS NULL OR deleted_no > $3)".to_string(),
                vec![42, 7]
            )
        );
        assert_eq!(
            rendered(ListingSnapshot::present(), 0),
            (
                "seq <= $1 AND deleted_at IS NULL".to_string(),
                vec![i64::MAX]
            )
        );
        assert_eq!(ListingSnapshot::present().deletions_hidden(), i64::MAX);
    }
}
