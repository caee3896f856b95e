//! One runner at a time for the background jobs when several processes
//! share a PostgreSQL database.
//!
//! Each job takes a transaction-scoped advisory lock
//! (`pg_try_advisory_xact_lock`) on a connection of its own and holds that
//! transaction open while it works; a process whose try fails skips that
//! round, since another process is doing the same work. The lock goes with
//! the transaction, so a job that fails, panics or is aborted, or a process
//! that dies, never leaves it held. SQLite serves one process, whose jobs
//! already run one at a time: there the lock is a no-op.

use sqlx::{Postgres, Transaction};

use super::{Pool, Store, StoreResult};

/// A background job that must not run in two processes at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    Purge,
    KeyMaintenance,
}

impl Job {
    /// The advisory lock's key. Advisory locks are shared by everything
    /// using the database, so the keys start with "accessd" in ASCII to stay
    /// clear of other applications' small integers.
    fn lock_key(self) -> i64 {
        const PREFIX: i64 = 0x6163_6365_7373_6400;
        PREFIX
            + match self {
                Job::Purge => 1,
                Job::KeyMaintenance => 2,
            }
    }
}

/// The right to run a job, until it is released or dropped.
#[must_use = "the job may run only while the lock is held"]
pub struct JobLock {
    /// The transaction that holds the advisory lock; none on SQLite.
    held: Option<Transaction<'static, Postgres>>,
}

impl JobLock {
    /// Ends the lock's transaction at once (dropping it also ends it, a
    /// moment later, when the connection goes back to the pool).
    pub async fn release(self) -> StoreResult<()> {
        if let Some(tx) = self.held {
            tx.rollback().await?;
        }
        Ok(())
    }
}

impl Store {
    /// The lock of `job`, or `None` when another process holds it now.
    pub async fn try_lock_job(&self, job: Job) -> StoreResult<Option<JobLock>> {
        let Pool::Postgres(pool) = &self.pool else {
            return Ok(Some(JobLock { held: None }));
        };
        let mut tx = pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(job.lock_key())
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            tx.rollback().await?;
            return Ok(None);
        }
        Ok(Some(JobLock { held: Some(tx) }))
    }

    /// Runs `work` while holding the lock of `job`; `None` when another
    /// process holds it and `work` was not run.
    pub async fn run_exclusively<T>(
        &self,
        job: Job,
        work: impl Future<Output = T>,
    ) -> StoreResult<Option<T>> {
        let Some(lock) = self.try_lock_job(job).await? else {
            tracing::debug!(?job, "another process runs this job now; skipped");
            return Ok(None);
        };
        let done = work.await;
        if let Err(err) = lock.release().await {
            // The transaction ends with its connection anyway.
            tracing::warn!(?job, %err, "cannot release the job lock");
        }
        Ok(Some(done))
    }
}
