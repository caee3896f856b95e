//! The background job that rotates signing keys on each account's
//! `key_rotation_interval_days` and deletes keys retired long enough that
//! no token they signed can still verify. It runs on the purge interval.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::auth::app_token;
use crate::store::Store;

pub fn spawn(store: Store, interval: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        loop {
            ticks.tick().await;
            match app_token::maintain_keys(&store).await {
                Ok((0, 0)) => {}
                Ok((rotated, deleted)) => {
                    tracing::info!(
                        rotated,
                        deleted,
                        "signing keys rotated and retired keys deleted"
                    )
                }
                Err(err) => tracing::warn!(%err, "signing-key maintenance failed; will retry"),
            }
        }
    })
}
