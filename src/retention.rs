//! The background purge of records past their retention. With several
//! processes on one PostgreSQL database, one of them purges at a time
//! (see [`crate::store::job_lock`]).

use tokio::task::JoinHandle;

use crate::config::Retention;
use crate::domain::Timestamp;
use crate::listing::SNAPSHOT_SECONDS;
use crate::store::job_lock::Job;
use crate::store::retention::Purged;
use crate::store::{Store, StoreResult};

/// Deleted users stay as tombstones a little longer than a listing snapshot lives.
const TOMBSTONE_SECONDS: i64 = SNAPSHOT_SECONDS + 5 * 60;

pub fn spawn(store: Store, retention: Retention) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(retention.purge_interval);
        loop {
            ticks.tick().await;
            purge_once(&store, &retention).await;
        }
    })
}

pub async fn purge_once(store: &Store, retention: &Retention) {
    let result = store
        .run_exclusively(Job::Purge, purge_now(store, retention))
        .await;
    match result.and_then(|ran| ran.transpose()) {
        Ok(Some(purged)) if purged != Default::default() => {
            tracing::info!(?purged, "purged expired records")
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "purge of expired records failed; will retry"),
    }
}

async fn purge_now(store: &Store, retention: &Retention) -> StoreResult<Purged> {
    let now = Timestamp::now();
    let keep = i64::try_from(retention.session_retention.as_secs()).unwrap_or(i64::MAX);
    store
        .purge_expired_records(
            now,
            now.plus_seconds(-keep),
            now.plus_seconds(-TOMBSTONE_SECONDS),
        )
        .await
}
