//! The background job that rotates signing keys on each account's
//! `key_rotation_interval_days` and deletes keys retired long enough that
//! no token they signed can still verify. It runs on the purge interval,
//! in one process at a time when several share a PostgreSQL database (see
//! [`crate::store::job_lock`]): the accounts due are read under the lock, so
//! a key due for rotation is replaced once, not once per process.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::auth::app_token;
use crate::store::Store;
use crate::store::job_lock::Job;

pub fn spawn(store: Store, interval: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        loop {
            ticks.tick().await;
            let result = store
                .run_exclusively(Job::KeyMaintenance, app_token::maintain_keys(&store))
                .await;
            match result.and_then(|ran| ran.transpose()) {
                Ok(None | Some((0, 0))) => {}
                Ok(Some((rotated, deleted))) => {
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
