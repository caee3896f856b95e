//! The change counter behind the in-memory decision state (see
//! [`crate::gate`]): every write to what a decision reads counts up
//! `access_gate_version` in the same transaction (triggers of migration
//! 0012), and on PostgreSQL also notifies the `accessd_gate` channel.

use sqlx::postgres::PgListener;

use super::{Pool, Store, StoreResult, with_pool};

/// The channel PostgreSQL notifies on each committed change.
pub const GATE_CHANNEL: &str = "accessd_gate";

impl Store {
    /// How many committed transactions have changed what decisions read.
    pub async fn gate_version(&self) -> StoreResult<i64> {
        let version = with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT version FROM access_gate_version WHERE id = 1")
                .fetch_one(pool)
                .await?
        });
        Ok(version)
    }

    /// A connection listening on [`GATE_CHANNEL`]; `None` on SQLite, where
    /// one process holds the file and polling the version suffices.
    pub async fn gate_listener(&self) -> StoreResult<Option<PgListener>> {
        match &self.pool {
            Pool::Sqlite(_) => Ok(None),
            Pool::Postgres(pool) => {
                let mut listener = PgListener::connect_with(pool).await?;
                listener.listen(GATE_CHANNEL).await?;
                Ok(Some(listener))
            }
        }
    }
}
