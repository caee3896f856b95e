//! Listing snapshots: what a paged listing shows on every page.
//!
//! A snapshot names the newest row (`last_seq`) and the rows that were
//! already deleted (tombstones) when the listing's first page was read.
//! Pages read against it show exactly the rows of that moment: rows created
//! since are left out; rows deleted since are still shown, since their
//! tombstones outlive any snapshot. The deleted set is taken as the database
//! showed it, not by comparing timestamps, so a deletion committed late
//! cannot make a row vanish between two pages.

use std::sync::Arc;

use tracing::instrument;

use super::{Store, StoreResult, with_pool};

/// More tombstones than this (a mass deletion minutes ago) and the snapshot
/// stops tracking them one by one: its pages then leave out every deleted row.
pub const MAX_TRACKED_TOMBSTONES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingSnapshot {
    pub last_seq: i64,
    /// Rows deleted before the snapshot, or `None` to leave out every deleted row.
    pub hidden: Option<Arc<[i64]>>,
}

impl ListingSnapshot {
    /// The rows that exist now, without any pinned past.
    pub fn now() -> Self {
        Self {
            last_seq: i64::MAX,
            hidden: None,
        }
    }

    pub fn taken(last_seq: i64, mut tombstones: Vec<i64>) -> Self {
        if tombstones.len() > MAX_TRACKED_TOMBSTONES {
            return Self {
                last_seq,
                hidden: None,
            };
        }
        tombstones.sort_unstable();
        Self {
            last_seq,
            hidden: Some(tombstones.into()),
        }
    }

    /// The SQL condition for rows of this snapshot, with `$N` placeholders
    /// numbered from `first`, and the values to bind to them in order.
    pub fn condition(&self, first: usize) -> (String, Vec<i64>) {
        let mut sql = format!("seq <= ${first}");
        let mut binds = vec![self.last_seq];
        match &self.hidden {
            None => sql.push_str(" AND deleted_at IS NULL"),
            Some(hidden) if hidden.is_empty() => {}
            Some(hidden) => {
                let placeholders: Vec<String> = (0..hidden.len())
                    .map(|i| format!("${}", first + 1 + i))
                    .collect();
                sql.push_str(&format!(" AND seq NOT IN ({})", placeholders.join(", ")));
                binds.extend(hidden.iter().copied());
            }
        }
        (sql, binds)
    }

    /// Tombstones this snapshot leaves out, when it tracks them.
    pub fn hidden(&self) -> &[i64] {
        self.hidden.as_deref().unwrap_or(&[])
    }
}

/// The tables a listing can be pinned over, with the column that scopes them.
#[derive(Clone, Copy, Debug)]
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
}

impl Store {
    /// The rows of `scope` as they are now: the newest `seq` and the
    /// tombstones, read in one transaction.
    #[instrument(skip_all)]
    pub async fn take_snapshot(
        &self,
        scope: ListingScope,
        owner: &str,
    ) -> StoreResult<ListingSnapshot> {
        let (table, column) = scope.table_and_column();
        let newest = format!("SELECT MAX(seq) FROM {table} WHERE {column} = $1");
        // Only the tombstone index answers this without a scan; tombstones
        // are few (they last minutes), so other owners' are dropped here.
        let tombstones = format!("SELECT {column}, seq FROM {table} WHERE deleted_at IS NOT NULL");
        let (last, deleted): (Option<i64>, Vec<(String, i64)>) = with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let last = sqlx::query_scalar(&newest)
                .bind(owner)
                .fetch_one(&mut *tx)
                .await?;
            let deleted = sqlx::query_as(&tombstones).fetch_all(&mut *tx).await?;
            tx.commit().await?;
            (last, deleted)
        });
        let hidden = deleted
            .into_iter()
            .filter(|(o, _)| o == owner)
            .map(|(_, seq)| seq)
            .collect();
        Ok(ListingSnapshot::taken(last.unwrap_or(0), hidden))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_number_their_placeholders() {
        let snapshot = ListingSnapshot::taken(42, vec![9, 3]);
        assert_eq!(
            snapshot.condition(2),
            (
                "seq <= $2 AND seq NOT IN ($3, $4)".to_string(),
                vec![42, 3, 9]
            )
        );
        assert_eq!(
            ListingSnapshot::taken(5, vec![]).condition(1),
            ("seq <= $1".to_string(), vec![5])
        );
        assert_eq!(
            ListingSnapshot::now().condition(1).0,
            "seq <= $1 AND deleted_at IS NULL"
        );
        let many = ListingSnapshot::taken(1, (0..=MAX_TRACKED_TOMBSTONES as i64).collect());
        assert_eq!(many.hidden, None);
    }
}
