//! Fixed-window counters shared by every server on the database, so a limit
//! holds however many requests race for it.

use tracing::instrument;

use super::{Store, StoreResult, with_writer};
use crate::domain::Timestamp;

/// How much of a thing may be done per window.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub per_window: i64,
    pub window_seconds: i64,
}

/// The answer to a claim on a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    Granted,
    /// The window is used up; it reopens after this many seconds.
    Refused {
        retry_after_seconds: i64,
    },
}

impl Store {
    /// Claims one unit of `limit` under `key`, atomically: one upsert opens a
    /// new window or counts into the current one, so concurrent claims can
    /// never together exceed the limit.
    #[instrument(skip_all)]
    pub async fn claim_throttle(
        &self,
        key: &str,
        limit: Limit,
        now: Timestamp,
    ) -> StoreResult<Claim> {
        let sql = "INSERT INTO throttle_windows (key, started_at, used) VALUES ($1, $2, 1) \
                   ON CONFLICT (key) DO UPDATE SET \
                   used = CASE WHEN throttle_windows.started_at <= $3 THEN 1 \
                               ELSE throttle_windows.used + 1 END, \
                   started_at = CASE WHEN throttle_windows.started_at <= $3 THEN $2 \
                                     ELSE throttle_windows.started_at END \
                   RETURNING used, started_at";
        let window_micros = limit.window_seconds.saturating_mul(1_000_000);
        let stale_before = now.micros().saturating_sub(window_micros);
        let (used, started_at): (i64, i64) = with_writer!(self, |pool| {
            sqlx::query_as(sql)
                .bind(key)
                .bind(now.micros())
                .bind(stale_before)
                .fetch_one(pool)
                .await?
        });
        if used <= limit.per_window {
            return Ok(Claim::Granted);
        }
        let reopens_at = started_at.saturating_add(window_micros);
        let wait_micros = reopens_at.saturating_sub(now.micros()).max(0);
        Ok(Claim::Refused {
            // Clamped: a claim stamped just before a racing one opened the window
            // would otherwise wait a moment longer than the window itself.
            retry_after_seconds: ((wait_micros + 999_999) / 1_000_000)
                .clamp(1, limit.window_seconds.max(1)),
        })
    }

    /// Deletes windows that opened before `before`; they no longer limit anything.
    #[instrument(skip_all)]
    pub async fn purge_throttle_windows(&self, before: Timestamp) -> StoreResult<u64> {
        let purged = with_writer!(self, |pool| {
            sqlx::query("DELETE FROM throttle_windows WHERE started_at < $1")
                .bind(before.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(purged)
    }
}
