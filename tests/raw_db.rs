//! Direct access to a test server's database, for what the API cannot show:
//! how secrets are stored, and rows aged or locked on purpose.

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

pub enum RawDb {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl RawDb {
    pub async fn open(url: &str) -> RawDb {
        if url.starts_with("sqlite:") {
            let pool = SqlitePool::connect(url)
                .await
                .unwrap_or_else(|e| panic!("open {url}: {e}"));
            RawDb::Sqlite(pool)
        } else {
            let pool = PgPool::connect(url)
                .await
                .unwrap_or_else(|e| panic!("open {url}: {e}"));
            RawDb::Postgres(pool)
        }
    }

    /// Rows of two text columns.
    pub async fn pairs(&self, sql: &str) -> Vec<(String, String)> {
        let rows = match self {
            RawDb::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await,
            RawDb::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await,
        };
        rows.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Runs a statement with text parameters `$1…`; returns the rows changed.
    pub async fn execute(&self, sql: &str, binds: &[&str]) -> u64 {
        let result = match self {
            RawDb::Sqlite(pool) => {
                let mut query = sqlx::query(sql);
                for bind in binds {
                    query = query.bind(*bind);
                }
                query.execute(pool).await.map(|r| r.rows_affected())
            }
            RawDb::Postgres(pool) => {
                let mut query = sqlx::query(sql);
                for bind in binds {
                    query = query.bind(*bind);
                }
                query.execute(pool).await.map(|r| r.rows_affected())
            }
        };
        result.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub async fn close(self) {
        match self {
            RawDb::Sqlite(pool) => pool.close().await,
            RawDb::Postgres(pool) => pool.close().await,
        }
    }
}

/// The secret key file the server of `db` uses.
pub fn secret_key_file(db: &crate::common::TestDb) -> std::path::PathBuf {
    db.secret_key_file().unwrap_or_else(|| {
        let url = db.url();
        let file = url.strip_prefix("sqlite://").unwrap_or(&url);
        std::path::PathBuf::from(format!("{file}.key"))
    })
}
