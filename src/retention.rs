//! The background purge of records past their retention.

use tokio::task::JoinHandle;

use crate::config::Retention;
use crate::domain::Timestamp;
use crate::listing::SNAPSHOT_SECONDS;
use crate::store::Store;

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
    let now = Timestamp::now();
    let keep = i64::try_from(retention.session_retention.as_secs()).unwrap_or(i64::MAX);
    let result = store
        .purge_expired_records(
            now,
            now.plus_seconds(-keep),
            now.plus_seconds(-TOMBSTONE_SECONDS),
        )
        .await;
    match result {
        Ok(purged) if purged != Default::default() => {
            tracing::info!(?purged, "purged expired records")
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "purge of expired records failed; will retry"),
    }
}
