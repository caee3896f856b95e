//! Durable storage on SQLite (the embedded default) or PostgreSQL.
//!
//! Both backends run the same SQL text: every statement sticks to the dialect
//! the two share (`$N` placeholders, `RETURNING`, `ON CONFLICT`, `lower()`),
//! and integers, text and booleans are the only column types, so one row type
//! decodes from either. Where a statement must differ, the method matches on
//! [`Pool`] and says why. The schema itself lives in two migration sets,
//! `migrations/sqlite` and `migrations/postgres`, numbered alike.
//!
//! `Store` is a concrete type rather than a trait: the two backends are
//! chosen at start-up by URL and share every method body through
//! [`with_pool!`], so a trait would only add a second list of signatures.
//! The conformance tests in `tests/store.rs` run against both.

pub mod access_groups;
pub mod accounts;
pub mod activity;
pub mod admin;
pub mod apps;
pub mod gate;
mod idp_secrets;
pub mod idps;
pub mod job_lock;
pub mod keys;
pub mod logins;
pub mod oidc_logins;
pub mod organizations;
mod page;
pub mod policies;
pub mod retention;
pub mod scim;
pub mod scim_groups;
pub mod scim_listing;
pub mod sealing;
pub mod service_tokens;
pub mod snapshot;
pub mod throttle;
pub mod tokens;
mod user_pages;
pub mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use page::{Page, PageRequest, SortDirection};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Conflict(String),
    /// A record refers to something that does not exist.
    #[error("{0}")]
    UnknownReference(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A secret at rest cannot be sealed or opened (wrong or missing secret key).
    #[error("{0}")]
    Sealing(String),
    #[error("cannot prepare the database file: {0}")]
    File(#[from] std::io::Error),
    /// The database named at start-up cannot be opened or reached; says which and why.
    #[error("{0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// Whether the same operation may well succeed if tried again shortly:
    /// a busy or locked SQLite file, a PostgreSQL serialization failure or
    /// deadlock, a lost connection, or no free connection in the pool.
    pub fn is_transient(&self) -> bool {
        let StoreError::Database(err) = self else {
            return false;
        };
        match err {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| is_transient_code(&code)),
            _ => false,
        }
    }
}

/// SQLite result codes (extended ones carry the primary code in their low
/// byte) and PostgreSQL SQLSTATEs that mean "try again".
fn is_transient_code(code: &str) -> bool {
    const SQLITE_BUSY: i64 = 5;
    const SQLITE_LOCKED: i64 = 6;
    if let Ok(sqlite) = code.parse::<i64>() {
        return matches!(sqlite & 0xff, SQLITE_BUSY | SQLITE_LOCKED);
    }
    // 40001 serialization failure, 40P01 deadlock, 55P03 lock wait over
    // (`lock_timeout`), 08… connection
    // exception, 53300 too many connections, 57P0x server shutting down.
    matches!(
        code,
        "40001" | "40P01" | "55P03" | "53300" | "57P01" | "57P02" | "57P03"
    ) || code.starts_with("08")
}

#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// SQLite only: a pool of one connection for every write.
    sqlite_writer: Option<SqlitePool>,
    /// Seals secrets at rest; set by the server once the secret key is loaded.
    sealer: Option<sealing::Sealer>,
}

/// Runs `$body` with `$pool` bound to the concrete pool of either backend.
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($pool) => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Runs `$body` with `$pool` bound to where writes go: on SQLite the one
/// writing connection, so writers queue in the process instead of meeting
/// SQLite's lock and sleeping in its busy handler; on PostgreSQL the pool.
/// A body must not call another store method that writes: the writing
/// connection is held until the body ends.
macro_rules! with_writer {
    ($store:expr, |$pool:ident| $body:expr) => {
        match (&$store.pool, &$store.sqlite_writer) {
            (_, Some($pool)) => $body,
            ($crate::store::Pool::Sqlite($pool), None) => $body,
            ($crate::store::Pool::Postgres($pool), _) => $body,
        }
    };
}
pub(crate) use with_writer;

/// How long a statement waits for a lock another writer holds before the
/// request is answered 503 with `Retry-After` (SQLite `busy_timeout`,
/// PostgreSQL `lock_timeout`).
const LOCK_WAIT: Duration = Duration::from_secs(5);
/// How long a request waits for a free pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(10);

impl Store {
    /// Opens `sqlite://PATH` (created if missing) or `postgres://…`.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let mut writer_pool = None;
        let pool = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?;
            let path = options.get_filename().to_path_buf();
            let unavailable = |why: &dyn std::fmt::Display| {
                StoreError::Unavailable(format!(
                    "cannot open the SQLite database {}: {why}",
                    path.display()
                ))
            };
            crate::private_files::prepare_sqlite_file(&path).map_err(|e| unavailable(&e))?;
            let options = options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL makes every commit durable in WAL mode, not just consistent.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(LOCK_WAIT);
            let readers = SqlitePoolOptions::new()
                .max_connections(8)
                .acquire_timeout(POOL_WAIT)
                // A file does not go away under an open connection; a ping
                // before each use would cost a round trip to the worker thread.
                .test_before_acquire(false)
                .connect_with(options.clone())
                .await
                .map_err(|e| unavailable(&e))?;
            // SQLite lets one writer in at a time and makes the others
            // sleep and retry; queueing them here instead keeps the file
            // busy (measured: about 4x the creates per second, p99 from
            // over a second to tens of milliseconds at 16 writers).
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(POOL_WAIT)
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .map_err(|e| unavailable(&e))?;
            writer_pool = Some(writer);
            Pool::Sqlite(readers)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let lock_wait = format!("{}ms", LOCK_WAIT.as_millis());
            let options =
                PgConnectOptions::from_str(url)?.options([("lock_timeout", lock_wait.as_str())]);
            // One connection first: a pool that cannot connect reports only
            // that it timed out, while this names the server and the cause.
            let where_ = format!(
                "PostgreSQL at {}:{} (database {})",
                options.get_host(),
                options.get_port(),
                options.get_database().unwrap_or("named after the user")
            );
            let probe = <sqlx::postgres::PgConnection as sqlx::Connection>::connect_with(&options)
                .await
                .map_err(|e| StoreError::Unavailable(format!("cannot reach {where_}: {e}")))?;
            sqlx::Connection::close(probe).await.ok();
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(POOL_WAIT)
                // No ping before each use (a round trip per query): a
                // connection the server dropped fails its next statement,
                // which answers 503 with Retry-After and is not reused.
                .test_before_acquire(false)
                .connect_with(options)
                .await?;
            Pool::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        Ok(Self {
            pool,
            sqlite_writer: writer_pool,
            sealer: None,
        })
    }

    /// This store, sealing and opening secrets at rest with `sealer`.
    pub fn with_sealer(self, sealer: sealing::Sealer) -> Self {
        Self {
            sealer: Some(sealer),
            ..self
        }
    }

    /// The sealer; storing or reading a secret without one is refused.
    fn sealer(&self) -> StoreResult<&sealing::Sealer> {
        self.sealer.as_ref().ok_or_else(|| {
            StoreError::Sealing("no secret key is loaded to seal or open secrets".to_string())
        })
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.pool {
            Pool::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await?,
            Pool::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        // Keys no SQL migration can compute as the in-memory filter folds case.
        self.index_scim_users_stored_unindexed().await?;
        Ok(())
    }

    pub fn backend_name(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        if let Some(writer) = &self.sqlite_writer {
            writer.close().await;
        }
        with_pool!(self, |pool| pool.close().await)
    }
}

/// A value bound to a statement built at run time, in `$N` order.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    Bool(bool),
}

/// Binds every value of `$binds` to `$query`, in order.
macro_rules! bind_all {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for bind in $binds {
            query = match bind {
                $crate::store::Bind::Text(text) => query.bind(text.clone()),
                $crate::store::Bind::OptText(text) => query.bind(text.clone()),
                $crate::store::Bind::Int(int) => query.bind(*int),
                $crate::store::Bind::Bool(flag) => query.bind(*flag),
            };
        }
        query
    }};
}
pub(crate) use bind_all;

impl Store {
    /// One page of rows and the total they are a page of. `list_sql` takes
    /// `binds` and then `LIMIT` and `OFFSET` as its last two parameters;
    /// `count_sql` takes `binds` alone.
    async fn fetch_page<R>(
        &self,
        list_sql: &str,
        count_sql: &str,
        binds: &[Bind],
        page: PageRequest,
    ) -> StoreResult<(Vec<R>, u64)>
    where
        R: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + Send
            + Unpin,
    {
        let mut paged = binds.to_vec();
        paged.push(Bind::Int(page.limit()));
        paged.push(Bind::Int(page.offset()));
        let (rows, total): (Vec<R>, i64) = with_pool!(self, |pool| {
            let rows = bind_all!(sqlx::query_as(list_sql), &paged)
                .fetch_all(pool)
                .await?;
            let total = bind_all!(sqlx::query_scalar(count_sql), binds)
                .fetch_one(pool)
                .await?;
            (rows, total)
        });
        Ok((rows, u64::try_from(total).unwrap_or(0)))
    }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`] with `what`.
fn conflict_on_unique(what: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |err| match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(what.to_string())
        }
        _ => StoreError::Database(err),
    }
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// Escapes `%`, `_` and `\` so text matches literally inside `LIKE … ESCAPE '\'`.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// A case-insensitive substring pattern for `lower(column) LIKE … ESCAPE '\'`.
fn like_pattern(needle: &str) -> String {
    format!("%{}%", escape_like(&needle.to_lowercase()))
}
