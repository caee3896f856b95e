//! Removal of records past their retention.

use tracing::instrument;

use super::{Store, StoreResult, with_writer};
use crate::domain::Timestamp;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub sessions: u64,
    pub failed_logins: u64,
    pub deleted_users: u64,
    pub otp_challenges: u64,
    pub throttle_windows: u64,
    pub deleted_scim_users: u64,
    pub listing_snapshots: u64,
}

/// Throttle windows are at most this long (sign-in codes use ten minutes);
/// older ones limit nothing, and purging them keeps the table as small as
/// the keys seen in the last hour, however many an attacker invents.
const LONGEST_THROTTLE_WINDOW_SECONDS: i64 = 3600;

impl Store {
    /// Deletes sessions that expired or were revoked before `sessions_before`,
    /// failed logins past their own expiry at `now`, and tombstones of Access
    /// and SCIM users older than `tombstones_before`; sign-in challenges past
    /// their expiry (used or not), throttle windows that closed, and listing
    /// snapshots that expired.
    #[instrument(skip_all)]
    pub async fn purge_expired_records(
        &self,
        now: Timestamp,
        sessions_before: Timestamp,
        tombstones_before: Timestamp,
    ) -> StoreResult<Purged> {
        let sessions = with_writer!(self, |pool| {
            sqlx::query("DELETE FROM access_sessions WHERE expires_at < $1 OR revoked_at < $1")
                .bind(sessions_before.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        let failed_logins = with_writer!(self, |pool| {
            sqlx::query("DELETE FROM access_failed_logins WHERE expires_at <= $1")
                .bind(now.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        let deleted_users = self.purge_deleted_users(tombstones_before).await?;
        let otp_challenges = self.purge_otp_challenges(now).await?;
        let throttle_windows = self
            .purge_throttle_windows(now.plus_seconds(-LONGEST_THROTTLE_WINDOW_SECONDS))
            .await?;
        let deleted_scim_users = self.purge_scim_tombstones(tombstones_before).await?;
        let listing_snapshots = self.purge_expired_snapshots(now).await?;
        Ok(Purged {
            sessions,
            failed_logins,
            deleted_users,
            otp_challenges,
            throttle_windows,
            deleted_scim_users,
            listing_snapshots,
        })
    }
}
