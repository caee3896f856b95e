use tracing::instrument;

pub use super::snapshot::ListingSnapshot;
use super::snapshot::{ListingScope, NEXT_DELETION};
use super::user_pages::{
    CHANGED_SINCE_SNAPSHOT, HIDDEN_PER_BLOCK, Resume, hidden_per_block as per_block,
    last_counted_block, locate,
};
use super::{
    Bind, Page, PageRequest, Store, StoreError, StoreResult, bind_all, corrupt, like_pattern,
    with_pool, with_writer,
};
use crate::domain::user::{AccessUser, Email, Seat, SeatId, UserId};
use crate::domain::{AccountId, Timestamp};

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    account_id: String,
    email: String,
    name: Option<String>,
    seat_uid: String,
    access_seat: bool,
    gateway_seat: bool,
    seat_updated_at: i64,
    active_device_count: i64,
    last_successful_login: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<UserRow> for AccessUser {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, Self::Error> {
        Ok(AccessUser {
            id: UserId::parse(&row.id).ok_or_else(|| corrupt("user id"))?,
            account_id: AccountId::parse(&row.account_id).ok_or_else(|| corrupt("account id"))?,
            email: Email::from_stored(row.email),
            name: row.name,
            seat: Seat {
                id: SeatId::parse(&row.seat_uid).ok_or_else(|| corrupt("seat uid"))?,
                access: row.access_seat,
                gateway: row.gateway_seat,
                updated_at: Timestamp::from_micros(row.seat_updated_at),
            },
            active_device_count: row.active_device_count,
            last_successful_login: row.last_successful_login.map(Timestamp::from_micros),
            created_at: Timestamp::from_micros(row.created_at),
            updated_at: Timestamp::from_micros(row.updated_at),
        })
    }
}

/// Adds `$2` (negative to subtract) to the account's live-user total.
const ADJUST_TOTAL: &str = "INSERT INTO access_user_totals (account_id, live) VALUES ($1, $2) \
     ON CONFLICT (account_id) DO UPDATE SET live = access_user_totals.live + excluded.live";

/// Adds `$3` (negative to subtract) to the users present in block `$2` of account `$1`.
const ADJUST_BLOCK: &str = "INSERT INTO access_user_blocks (account_id, block, present) VALUES ($1, $2, $3) \
     ON CONFLICT (account_id, block) DO UPDATE SET present = access_user_blocks.present + excluded.present";

/// How many consecutive `seq` values one counter of `access_user_blocks` covers.
pub(super) const BLOCK_SPAN: i64 = 4096;

const COLUMNS: &str = "id, account_id, email, name, seat_uid, access_seat, gateway_seat, \
                       seat_updated_at, active_device_count, last_successful_login, \
                       created_at, updated_at";

/// The filters of `GET /access/users`, combined with AND. Matching ignores case.
#[derive(Debug, Default, Clone)]
pub struct UserFilter {
    /// Exact e-mail.
    pub email: Option<String>,
    /// Substring of the name.
    pub name: Option<String>,
    /// Substring of the e-mail or the name.
    pub search: Option<String>,
}

/// The WHERE clause shared by a listing page and its count.
fn listing_condition(
    account: &AccountId,
    filter: &UserFilter,
    snapshot: &ListingSnapshot,
) -> (String, Vec<Bind>) {
    let mut binds = vec![Bind::Text(account.to_string())];
    let visible = snapshot.condition(&mut binds);
    let mut sql = format!("account_id = $1 AND {visible}");
    if let Some(email) = &filter.email {
        binds.push(Bind::Text(Email::key_of(email)));
        sql.push_str(&format!(" AND email_key = ${}", binds.len()));
    }
    if let Some(name) = &filter.name {
        binds.push(Bind::Text(like_pattern(name)));
        sql.push_str(&format!(" AND name_key LIKE ${} ESCAPE '\\'", binds.len()));
    }
    if let Some(search) = &filter.search {
        binds.push(Bind::Text(like_pattern(search)));
        let n = binds.len();
        sql.push_str(&format!(
            " AND (email_key LIKE ${n} ESCAPE '\\' OR name_key LIKE ${n} ESCAPE '\\')"
        ));
    }
    (sql, binds)
}

fn name_key(name: Option<&str>) -> String {
    name.unwrap_or_default().to_lowercase()
}

impl Store {
    #[instrument(skip_all)]
    pub async fn create_user(&self, user: &AccessUser) -> StoreResult<()> {
        self.create_users_bulk(std::slice::from_ref(user)).await
    }

    /// Inserts many users in one transaction, in multi-row statements; for
    /// bulk loads. A duplicate e-mail fails the whole batch.
    #[instrument(skip_all)]
    pub async fn create_users_bulk(&self, users: &[AccessUser]) -> StoreResult<()> {
        const ROWS_PER_STATEMENT: usize = 500;
        const COLUMNS_PER_ROW: usize = 14;
        let statements: Vec<(String, &[AccessUser])> = users
            .chunks(ROWS_PER_STATEMENT)
            .map(|chunk| {
                let rows: Vec<String> = (0..chunk.len())
                    .map(|row| {
                        let first = row * COLUMNS_PER_ROW;
                        let params: Vec<String> = (1..=COLUMNS_PER_ROW)
                            .map(|col| format!("${}", first + col))
                            .collect();
                        format!("({})", params.join(", "))
                    })
                    .collect();
                let sql = format!(
                    "INSERT INTO access_users (id, account_id, email, email_key, name, name_key, \
                     seat_uid, access_seat, gateway_seat, seat_updated_at, active_device_count, \
                     last_successful_login, created_at, updated_at) VALUES {} RETURNING seq",
                    rows.join(", ")
                );
                (sql, chunk)
            })
            .collect();
        let Some(first) = users.first() else {
            return Ok(());
        };
        let added = i64::try_from(users.len()).unwrap_or(i64::MAX);
        with_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(ADJUST_TOTAL)
                .bind(first.account_id.as_str())
                .bind(added)
                .execute(&mut *tx)
                .await?;
            let mut seqs: Vec<i64> = Vec::with_capacity(users.len());
            for (sql, chunk) in &statements {
                let mut query = sqlx::query_scalar(sql);
                for user in *chunk {
                    query = query
                        .bind(user.id.as_str())
                        .bind(user.account_id.as_str())
                        .bind(user.email.as_str())
                        .bind(user.email.key())
                        .bind(user.name.as_deref())
                        .bind(name_key(user.name.as_deref()))
                        .bind(user.seat.id.as_str())
                        .bind(user.seat.access)
                        .bind(user.seat.gateway)
                        .bind(user.seat.updated_at.micros())
                        .bind(user.active_device_count)
                        .bind(user.last_successful_login.map(Timestamp::micros))
                        .bind(user.created_at.micros())
                        .bind(user.updated_at.micros());
                }
                let inserted: Vec<i64> =
                    query
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(super::conflict_on_unique(
                            "a user with this email already exists",
                        ))?;
                seqs.extend(inserted);
            }
            for (block, added) in per_block(seqs.iter().copied()) {
                sqlx::query(ADJUST_BLOCK)
                    .bind(first.account_id.as_str())
                    .bind(block)
                    .bind(added)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    #[instrument(skip_all)]
    pub async fn find_user(
        &self,
        account: &AccountId,
        id: &UserId,
    ) -> StoreResult<Option<AccessUser>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM access_users \
             WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL"
        );
        let row: Option<UserRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(id.as_str())
                .bind(account.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(AccessUser::try_from).transpose()
    }

    #[instrument(skip_all)]
    pub async fn find_user_by_email(
        &self,
        account: &AccountId,
        email: &str,
    ) -> StoreResult<Option<AccessUser>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM access_users \
             WHERE account_id = $1 AND email_key = $2 AND deleted_at IS NULL"
        );
        let row: Option<UserRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(account.as_str())
                .bind(Email::key_of(email))
                .fetch_optional(pool)
                .await?
        });
        row.map(AccessUser::try_from).transpose()
    }

    /// The account's users as they are now, pinned as the reference of a listing.
    #[instrument(skip_all)]
    pub async fn user_listing_snapshot(&self, account: &AccountId) -> StoreResult<ListingSnapshot> {
        self.take_snapshot(ListingScope::AccessUsers, account.as_str())
            .await
    }

    /// One page of the users that existed at `snapshot`, in creation order.
    /// Positions are counted on the index alone; only the page's rows are read.
    #[instrument(skip_all)]
    pub async fn list_users(
        &self,
        account: &AccountId,
        filter: &UserFilter,
        snapshot: &ListingSnapshot,
        page: PageRequest,
    ) -> StoreResult<Page<AccessUser>> {
        let (condition, mut binds) = listing_condition(account, filter, snapshot);
        let unfiltered = filter.email.is_none() && filter.name.is_none() && filter.search.is_none();
        let n = binds.len();
        let page_sql = format!(
            "SELECT {COLUMNS} FROM access_users WHERE seq IN (\
               SELECT seq FROM access_users WHERE {condition} AND seq >= ${} \
               ORDER BY seq LIMIT ${} OFFSET ${}) \
             ORDER BY seq",
            n + 1,
            n + 2,
            n + 3
        );
        let count_sql = format!("SELECT COUNT(*) FROM access_users WHERE {condition}");
        let blocks_sql = "SELECT block, present FROM access_user_blocks \
                          WHERE account_id = $1 AND block < $2 ORDER BY block";
        let totals_sql = "SELECT live FROM access_user_totals WHERE account_id = $1";
        let last_block = last_counted_block(snapshot);
        let (rows, total): (Vec<UserRow>, i64) = with_pool!(self, |pool| {
            // One read transaction, so counts and rows describe the same
            // state. The isolation level goes with BEGIN itself: a separate
            // SET TRANSACTION fails when the connection comes back from a
            // request cancelled mid-transaction.
            let begin = match self.pool {
                super::Pool::Postgres(_) => "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                super::Pool::Sqlite(_) => "BEGIN",
            };
            let mut tx = pool.begin_with(begin).await?;
            let (resume, total) = if unfiltered {
                let blocks: Vec<(i64, i64)> = sqlx::query_as(blocks_sql)
                    .bind(account.as_str())
                    .bind(last_block)
                    .fetch_all(&mut *tx)
                    .await?;
                let hidden: Vec<(i64, i64)> = sqlx::query_as(HIDDEN_PER_BLOCK)
                    .bind(account.as_str())
                    .bind(snapshot.deletions_hidden())
                    .fetch_all(&mut *tx)
                    .await?;
                // Kept by every create and delete: exact for the present, and
                // cheap where counting a million index entries is not.
                let live: Option<i64> = sqlx::query_scalar(totals_sql)
                    .bind(account.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                // The snapshot's total: the present's, with the users deleted
                // since and without those created since.
                let since: i64 = match snapshot.deletions {
                    Some(counted) => {
                        sqlx::query_scalar(CHANGED_SINCE_SNAPSHOT)
                            .bind(account.as_str())
                            .bind(snapshot.last_seq)
                            .bind(counted)
                            .fetch_one(&mut *tx)
                            .await?
                    }
                    None => 0,
                };
                let resume = locate(page.offset(), &blocks, &hidden.into_iter().collect());
                (resume, live.unwrap_or(0) + since)
            } else {
                let total: i64 = bind_all!(sqlx::query_scalar(&count_sql), &binds)
                    .fetch_one(&mut *tx)
                    .await?;
                (
                    Resume {
                        from_seq: 0,
                        skip: page.offset(),
                    },
                    total,
                )
            };
            binds.push(Bind::Int(resume.from_seq));
            binds.push(Bind::Int(page.limit()));
            binds.push(Bind::Int(resume.skip));
            let rows = bind_all!(sqlx::query_as(&page_sql), &binds)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            (rows, total)
        });
        Ok(Page {
            items: rows
                .into_iter()
                .map(AccessUser::try_from)
                .collect::<StoreResult<_>>()?,
            request: page,
            total_count: u64::try_from(total).unwrap_or(0),
        })
    }

    #[instrument(skip_all)]
    pub async fn live_user_total(&self, account: &AccountId) -> StoreResult<i64> {
        let sql = "SELECT live FROM access_user_totals WHERE account_id = $1";
        let live: Option<i64> = with_pool!(self, |pool| {
            sqlx::query_scalar(sql)
                .bind(account.as_str())
                .fetch_optional(pool)
                .await?
        });
        Ok(live.unwrap_or(0))
    }

    /// Gives the user a new e-mail (an identity provider renamed them).
    #[instrument(skip_all)]
    pub async fn change_user_email(
        &self,
        user: &AccessUser,
        email: &Email,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let sql = "UPDATE access_users SET email = $3, email_key = $4, updated_at = $5 \
                   WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL";
        let affected = with_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(user.id.as_str())
                .bind(user.account_id.as_str())
                .bind(email.as_str())
                .bind(email.key())
                .bind(now.micros())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(super::conflict_on_unique(
            "a user with this email already exists",
        ))?;
        Ok(affected > 0)
    }

    /// Saves a new name; false when the user does not exist.
    #[instrument(skip_all)]
    pub async fn rename_user(&self, user: &AccessUser) -> StoreResult<bool> {
        let sql = "UPDATE access_users SET name = $3, name_key = $4, updated_at = $5 \
                   WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL";
        let affected = with_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(user.id.as_str())
                .bind(user.account_id.as_str())
                .bind(user.name.as_deref())
                .bind(name_key(user.name.as_deref()))
                .bind(user.updated_at.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }

    /// Deletes the user, frees their seat and revokes every session of theirs,
    /// in one transaction. The row stays as a tombstone for listings under way.
    #[instrument(skip_all)]
    pub async fn delete_user(
        &self,
        account: &AccountId,
        id: &UserId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let tombstone = "UPDATE access_users SET deleted_at = $3, access_seat = $4, \
                         gateway_seat = $4, seat_updated_at = $3, updated_at = $3, deleted_no = $5 \
                         WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL";
        let revoke = "UPDATE access_sessions SET revoked_at = $2 \
                      WHERE user_id = $1 AND revoked_at IS NULL";
        let deleted = with_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            // Numbered for listings under way (see `snapshot`).
            let number: i64 = sqlx::query_scalar(NEXT_DELETION)
                .bind(ListingScope::AccessUsers.name())
                .bind(account.as_str())
                .fetch_one(&mut *tx)
                .await?;
            let affected = sqlx::query(tombstone)
                .bind(id.as_str())
                .bind(account.as_str())
                .bind(now.micros())
                .bind(false)
                .bind(number)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if affected > 0 {
                sqlx::query(ADJUST_TOTAL)
                    .bind(account.as_str())
                    .bind(-1_i64)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(revoke)
                    .bind(id.as_str())
                    .bind(now.micros())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            affected > 0
        });
        Ok(deleted)
    }

    /// Removes tombstones of users deleted before `before`.
    #[instrument(skip_all)]
    pub async fn purge_deleted_users(&self, before: Timestamp) -> StoreResult<u64> {
        let sql = "DELETE FROM access_users WHERE deleted_at IS NOT NULL AND deleted_at < $1 \
                   RETURNING account_id, seq";
        let purged = with_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            let rows: Vec<(String, i64)> = sqlx::query_as(sql)
                .bind(before.micros())
                .fetch_all(&mut *tx)
                .await?;
            let mut by_account: std::collections::BTreeMap<&str, Vec<i64>> = Default::default();
            for (account, seq) in &rows {
                by_account.entry(account.as_str()).or_default().push(*seq);
            }
            for (account, seqs) in by_account {
                for (block, removed) in per_block(seqs.into_iter()) {
                    sqlx::query(ADJUST_BLOCK)
                        .bind(account)
                        .bind(block)
                        .bind(-removed)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            rows.len() as u64
        });
        Ok(purged)
    }
}

/// A seat as `PATCH /access/seats` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatRecord {
    pub seat_uid: SeatId,
    pub access: bool,
    pub gateway: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One change asked of `PATCH /access/seats`.
#[derive(Debug, Clone)]
pub struct SeatChange {
    pub seat_uid: SeatId,
    pub access: bool,
    pub gateway: bool,
}

impl Store {
    /// Ends every session of the user; returns how many were live.
    #[instrument(skip_all)]
    pub async fn revoke_user_sessions(&self, user: &UserId, now: Timestamp) -> StoreResult<u64> {
        let revoked = with_writer!(self, |pool| {
            sqlx::query("UPDATE access_sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                .bind(user.as_str())
                .bind(now.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(revoked)
    }

    /// Applies every change or none: an unknown seat fails the whole request
    /// with `Ok(Err(seat))`. A seat left with neither flag is removed: the
    /// user's sessions end in the same transaction.
    #[instrument(skip_all)]
    pub async fn update_seats(
        &self,
        account: &AccountId,
        changes: &[SeatChange],
        now: Timestamp,
    ) -> StoreResult<Result<Vec<SeatRecord>, SeatId>> {
        let update = "UPDATE access_users SET access_seat = $3, gateway_seat = $4, seat_updated_at = $5 \
                      WHERE seat_uid = $1 AND account_id = $2 AND deleted_at IS NULL \
                      RETURNING id, created_at";
        let revoke =
            "UPDATE access_sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL";
        let outcome = with_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            let mut records = Vec::with_capacity(changes.len());
            let mut missing = None;
            for change in changes {
                let row: Option<(String, i64)> = sqlx::query_as(update)
                    .bind(change.seat_uid.as_str())
                    .bind(account.as_str())
                    .bind(change.access)
                    .bind(change.gateway)
                    .bind(now.micros())
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some((user_id, created_at)) = row else {
                    missing = Some(change.seat_uid.clone());
                    break;
                };
                if !change.access && !change.gateway {
                    sqlx::query(revoke)
                        .bind(&user_id)
                        .bind(now.micros())
                        .execute(&mut *tx)
                        .await?;
                }
                records.push(SeatRecord {
                    seat_uid: change.seat_uid.clone(),
                    access: change.access,
                    gateway: change.gateway,
                    created_at: Timestamp::from_micros(created_at),
                    updated_at: now,
                });
            }
            match missing {
                Some(seat) => {
                    tx.rollback().await?;
                    Err(seat)
                }
                None => {
                    tx.commit().await?;
                    Ok(records)
                }
            }
        });
        Ok(outcome)
    }
}
