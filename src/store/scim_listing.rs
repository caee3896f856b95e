//! SCIM listings read in SQL: a [`ScimCondition`] (what a filter asks, in
//! terms the indexes answer) becomes a WHERE clause; counts, pages and the
//! chunks a filter the SQL cannot express is checked over come from it; the
//! groups of a page's users and the members of a page's groups are read
//! for that page alone.
//!
//! Every condition is NULL-free (an absent `externalId` compares false, not
//! unknown), so `NOT` means what the in-memory filter means by it.

use std::collections::HashMap;

use tracing::instrument;

use super::scim::{COLUMNS as USER_COLUMNS, ScimUserRecord, ScimUserRow};
use super::scim_groups::{COLUMNS as GROUP_COLUMNS, GroupRow, ScimGroupRecord};
use super::snapshot::ListingSnapshot;
use super::{Bind, Store, StoreResult, bind_all, like_pattern, with_pool};
use crate::domain::IdpId;

/// The two kinds of SCIM resources, each in its table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScimKind {
    Users,
    Groups,
}

/// What a listing asks of its resources. Text is compared as given: the
/// caller folds case where the attribute ignores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScimCondition {
    /// `userName`, lower case (users).
    UserName(String),
    /// `displayName`, lower case.
    DisplayName(String),
    /// `displayName` contains this, lower case.
    DisplayNameContains(String),
    /// `externalId`, exactly.
    ExternalId(String),
    /// `id`, exactly.
    Id(String),
    /// One of the user's e-mails, lower case.
    Email(String),
    /// The user is a member of the group with this id.
    InGroup(String),
    /// The group has the user with this id as a member.
    HasMember(String),
    /// Every one; none at all is always true.
    All(Vec<ScimCondition>),
    /// Any one; none at all is never true.
    Any(Vec<ScimCondition>),
    Not(Box<ScimCondition>),
}

impl ScimCondition {
    pub fn always() -> Self {
        ScimCondition::All(Vec::new())
    }

    pub fn never() -> Self {
        ScimCondition::Any(Vec::new())
    }

    /// SQL over the row of `kind`'s table, its values pushed onto `binds`
    /// (`$1` must be the provider's id).
    fn render(&self, kind: ScimKind, binds: &mut Vec<Bind>) -> String {
        let mut bind = |value: &str| {
            binds.push(Bind::Text(value.to_string()));
            format!("${}", binds.len())
        };
        match (self, kind) {
            (ScimCondition::UserName(key), ScimKind::Users) => {
                format!("user_name_key = {}", bind(key))
            }
            (ScimCondition::DisplayName(key), _) => format!(
                "(display_name_key IS NOT NULL AND display_name_key = {})",
                bind(key)
            ),
            (ScimCondition::DisplayNameContains(part), _) => format!(
                "(display_name_key IS NOT NULL AND display_name_key LIKE {} ESCAPE '\\')",
                bind(&like_pattern(part))
            ),
            (ScimCondition::ExternalId(id), _) => {
                format!("(external_id IS NOT NULL AND external_id = {})", bind(id))
            }
            (ScimCondition::Id(id), _) => format!("id = {}", bind(id)),
            (ScimCondition::Email(key), ScimKind::Users) => format!(
                "id IN (SELECT user_id FROM scim_user_emails WHERE idp_id = $1 AND email_key = {})",
                bind(key)
            ),
            (ScimCondition::InGroup(group), ScimKind::Users) => format!(
                "id IN (SELECT user_id FROM scim_group_members WHERE group_id = {})",
                bind(group)
            ),
            (ScimCondition::HasMember(user), ScimKind::Groups) => format!(
                "id IN (SELECT group_id FROM scim_group_members WHERE user_id = {})",
                bind(user)
            ),
            (ScimCondition::All(all), _) if all.is_empty() => "1 = 1".to_string(),
            (ScimCondition::Any(any), _) if any.is_empty() => "1 = 0".to_string(),
            (ScimCondition::All(all), _) => join(all, " AND ", kind, binds),
            (ScimCondition::Any(any), _) => join(any, " OR ", kind, binds),
            (ScimCondition::Not(inner), _) => format!("NOT ({})", inner.render(kind, binds)),
            // An attribute the kind does not have matches nothing.
            (
                ScimCondition::UserName(_)
                | ScimCondition::Email(_)
                | ScimCondition::InGroup(_)
                | ScimCondition::HasMember(_),
                _,
            ) => "1 = 0".to_string(),
        }
    }
}

impl ScimCondition {
    /// A query for the `seq` of every row of `kind` that may meet the
    /// condition (and perhaps others), read through an index; `None` when
    /// no index narrows it. Binds as for [`ScimCondition::render`]; none are
    /// left behind when there is no such query.
    fn candidates(&self, kind: ScimKind, binds: &mut Vec<Bind>) -> Option<String> {
        let before = binds.len();
        let found = self.candidates_pushing(kind, binds);
        if found.is_none() {
            binds.truncate(before);
        }
        found
    }

    fn candidates_pushing(&self, kind: ScimKind, binds: &mut Vec<Bind>) -> Option<String> {
        let (table, _, _) = table(kind);
        let mut bind = |value: &str| {
            binds.push(Bind::Text(value.to_string()));
            format!("${}", binds.len())
        };
        Some(match (self, kind) {
            (ScimCondition::UserName(key), ScimKind::Users) => format!(
                "SELECT seq FROM scim_users WHERE idp_id = $1 AND user_name_key = {}",
                bind(key)
            ),
            (ScimCondition::DisplayName(key), ScimKind::Groups) => format!(
                "SELECT seq FROM scim_groups WHERE idp_id = $1 AND display_name_key = {}",
                bind(key)
            ),
            (ScimCondition::ExternalId(id), _) => format!(
                "SELECT seq FROM {table} WHERE idp_id = $1 AND external_id = {}",
                bind(id)
            ),
            (ScimCondition::Id(id), _) => format!(
                "SELECT seq FROM {table} WHERE idp_id = $1 AND id = {}",
                bind(id)
            ),
            (ScimCondition::Email(key), ScimKind::Users) => format!(
                "SELECT u.seq FROM scim_user_emails e JOIN scim_users u ON u.id = e.user_id \
                 WHERE e.idp_id = $1 AND e.email_key = {}",
                bind(key)
            ),
            (ScimCondition::InGroup(group), ScimKind::Users) => format!(
                "SELECT u.seq FROM scim_group_members m JOIN scim_users u ON u.id = m.user_id \
                 WHERE m.group_id = {} AND u.idp_id = $1",
                bind(group)
            ),
            (ScimCondition::HasMember(user), ScimKind::Groups) => format!(
                "SELECT g.seq FROM scim_group_members m JOIN scim_groups g ON g.id = m.group_id \
                 WHERE m.user_id = {} AND g.idp_id = $1",
                bind(user)
            ),
            (ScimCondition::All(all), _) => {
                return all.iter().find_map(|part| part.candidates(kind, binds));
            }
            (ScimCondition::Any(any), _) => {
                if any.is_empty() {
                    return Some(format!("SELECT seq FROM {table} WHERE 1 = 0"));
                }
                let each: Option<Vec<String>> = any
                    .iter()
                    .map(|part| part.candidates(kind, binds))
                    .collect();
                return each.map(|each| each.join(" UNION ALL "));
            }
            _ => return None,
        })
    }
}

fn join(parts: &[ScimCondition], with: &str, kind: ScimKind, binds: &mut Vec<Bind>) -> String {
    let rendered: Vec<String> = parts.iter().map(|p| p.render(kind, binds)).collect();
    format!("({})", rendered.join(with))
}

/// The order of a listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScimOrder {
    /// Creation order.
    Created,
    /// By `userName` (users) or `displayName` (groups), lower case, code
    /// point by code point; creation order among equals.
    Name { descending: bool },
}

/// Which rows of a listing to read.
#[derive(Clone, Copy, Debug)]
pub struct ScimSelection<'a> {
    pub condition: &'a ScimCondition,
    /// Only rows created after this `seq` (0: from the start).
    pub after_seq: i64,
    pub order: ScimOrder,
    pub offset: u64,
    pub limit: u64,
}

/// The WHERE clause of a listing of `kind` (users at `snapshot`) and its binds.
fn listing_where(
    kind: ScimKind,
    idp: &IdpId,
    snapshot: &ListingSnapshot,
    condition: &ScimCondition,
) -> (String, Vec<Bind>) {
    let mut binds = vec![Bind::Text(idp.to_string())];
    // Rows found through an index are read by `seq`; only without one is
    // the provider's listing index walked. Saying so, rather than leaving
    // the choice to the planner, keeps the plan when there are no table
    // statistics (SQLite never gathers them here).
    let rows = match condition.candidates(kind, &mut binds) {
        Some(candidates) => format!("seq IN ({candidates})"),
        None => "idp_id = $1".to_string(),
    };
    let visible = match kind {
        ScimKind::Users => snapshot.condition(&mut binds),
        // Groups are deleted outright: a listing shows those of the present.
        ScimKind::Groups => "1 = 1".to_string(),
    };
    let filter = condition.render(kind, &mut binds);
    (format!("{rows} AND {visible} AND {filter}"), binds)
}

fn table(kind: ScimKind) -> (&'static str, &'static str, &'static str) {
    match kind {
        ScimKind::Users => ("scim_users", USER_COLUMNS, "user_name_key"),
        ScimKind::Groups => ("scim_groups", GROUP_COLUMNS, "display_name_key"),
    }
}

/// A `SELECT` of the listing's rows with `seq` first, and its binds.
fn select_sql(
    kind: ScimKind,
    idp: &IdpId,
    snapshot: &ListingSnapshot,
    selection: &ScimSelection<'_>,
) -> (String, Vec<Bind>) {
    let (table, columns, name) = table(kind);
    let (condition, mut binds) = listing_where(kind, idp, snapshot, selection.condition);
    let order = match selection.order {
        ScimOrder::Created => "seq".to_string(),
        ScimOrder::Name { descending: false } => format!("{name}, seq"),
        ScimOrder::Name { descending: true } => format!("{name} DESC, seq"),
    };
    binds.push(Bind::Int(selection.after_seq));
    let after = binds.len();
    binds.push(Bind::Int(clamp(selection.limit)));
    binds.push(Bind::Int(clamp(selection.offset)));
    let sql = format!(
        "SELECT seq, {columns} FROM {table} WHERE {condition} AND seq > ${after} \
         ORDER BY {order} LIMIT ${} OFFSET ${}",
        after + 1,
        after + 2
    );
    (sql, binds)
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `$first, …`, one per value, and the values as binds.
fn list_of(first: usize, values: &[String]) -> (String, Vec<Bind>) {
    let list: Vec<String> = (0..values.len())
        .map(|i| format!("${}", first + i))
        .collect();
    (
        list.join(", "),
        values.iter().cloned().map(Bind::Text).collect(),
    )
}

#[derive(sqlx::FromRow)]
struct SeqUserRow {
    seq: i64,
    #[sqlx(flatten)]
    row: ScimUserRow,
}

#[derive(sqlx::FromRow)]
struct SeqGroupRow {
    seq: i64,
    #[sqlx(flatten)]
    row: GroupRow,
}

impl Store {
    /// How many resources of `kind` (users at `snapshot`) meet `condition`.
    #[instrument(skip_all)]
    pub async fn count_scim(
        &self,
        kind: ScimKind,
        idp: &IdpId,
        snapshot: &ListingSnapshot,
        condition: &ScimCondition,
    ) -> StoreResult<u64> {
        let (table, _, _) = table(kind);
        let (condition, binds) = listing_where(kind, idp, snapshot, condition);
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {condition}");
        let count: i64 = with_pool!(self, |pool| {
            bind_all!(sqlx::query_scalar(&sql), &binds)
                .fetch_one(pool)
                .await?
        });
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The users of a selection, with their `seq`, in its order.
    #[instrument(skip_all)]
    pub async fn select_scim_users(
        &self,
        idp: &IdpId,
        snapshot: &ListingSnapshot,
        selection: &ScimSelection<'_>,
    ) -> StoreResult<Vec<(i64, ScimUserRecord)>> {
        let (sql, binds) = select_sql(ScimKind::Users, idp, snapshot, selection);
        let rows: Vec<SeqUserRow> = with_pool!(self, |pool| {
            bind_all!(sqlx::query_as(&sql), &binds)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|r| Ok((r.seq, ScimUserRecord::try_from(r.row)?)))
            .collect()
    }

    /// The groups of a selection, with their `seq`, in its order; their
    /// members are left for [`Store::scim_members_of_groups`].
    #[instrument(skip_all)]
    pub async fn select_scim_groups(
        &self,
        idp: &IdpId,
        selection: &ScimSelection<'_>,
    ) -> StoreResult<Vec<(i64, ScimGroupRecord)>> {
        let present = ListingSnapshot::present();
        let (sql, binds) = select_sql(ScimKind::Groups, idp, &present, selection);
        let rows: Vec<SeqGroupRow> = with_pool!(self, |pool| {
            bind_all!(sqlx::query_as(&sql), &binds)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|r| Ok((r.seq, r.row.into_record(Vec::new())?)))
            .collect()
    }

    /// The users (tombstones too) and groups with these `seq` values, by `seq`.
    #[instrument(skip_all)]
    pub async fn scim_resources_by_seq(
        &self,
        idp: &IdpId,
        users: &[i64],
        groups: &[i64],
    ) -> StoreResult<(HashMap<i64, ScimUserRecord>, HashMap<i64, ScimGroupRecord>)> {
        let by_seq = |kind: ScimKind, seqs: &[i64]| {
            let (table, columns, _) = table(kind);
            let mut binds = vec![Bind::Text(idp.to_string())];
            binds.extend(seqs.iter().map(|s| Bind::Int(*s)));
            let list: Vec<String> = (2..binds.len() + 1).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT seq, {columns} FROM {table} WHERE idp_id = $1 AND seq IN ({})",
                list.join(", ")
            );
            (sql, binds)
        };
        let mut found_users = HashMap::new();
        let mut found_groups = HashMap::new();
        if !users.is_empty() {
            let (sql, binds) = by_seq(ScimKind::Users, users);
            let rows: Vec<SeqUserRow> = with_pool!(self, |pool| {
                bind_all!(sqlx::query_as(&sql), &binds)
                    .fetch_all(pool)
                    .await?
            });
            for r in rows {
                found_users.insert(r.seq, ScimUserRecord::try_from(r.row)?);
            }
        }
        if !groups.is_empty() {
            let (sql, binds) = by_seq(ScimKind::Groups, groups);
            let rows: Vec<SeqGroupRow> = with_pool!(self, |pool| {
                bind_all!(sqlx::query_as(&sql), &binds)
                    .fetch_all(pool)
                    .await?
            });
            for r in rows {
                found_groups.insert(r.seq, r.row.into_record(Vec::new())?);
            }
        }
        Ok((found_users, found_groups))
    }

    /// (user id, group id, group display name) of these users' groups, by
    /// display name.
    #[instrument(skip_all)]
    pub async fn scim_groups_of_users(
        &self,
        users: &[String],
    ) -> StoreResult<Vec<(String, String, String)>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let (list, binds) = list_of(1, users);
        let sql = format!(
            "SELECT m.user_id, g.id, g.display_name FROM scim_group_members m \
             JOIN scim_groups g ON g.id = m.group_id WHERE m.user_id IN ({list}) \
             ORDER BY g.display_name, g.id"
        );
        let rows = with_pool!(self, |pool| {
            bind_all!(sqlx::query_as(&sql), &binds)
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    /// How many members each of these groups has (groups without any are left out).
    #[instrument(skip_all)]
    pub async fn scim_member_counts(&self, groups: &[String]) -> StoreResult<HashMap<String, u64>> {
        if groups.is_empty() {
            return Ok(HashMap::new());
        }
        let (list, binds) = list_of(1, groups);
        let sql = format!(
            "SELECT group_id, COUNT(*) FROM scim_group_members WHERE group_id IN ({list}) GROUP BY group_id"
        );
        let rows: Vec<(String, i64)> = with_pool!(self, |pool| {
            bind_all!(sqlx::query_as(&sql), &binds)
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(group, n)| (group, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    /// (group id, user id) of these groups' members, by user id.
    #[instrument(skip_all)]
    pub async fn scim_members_of_groups(
        &self,
        groups: &[String],
    ) -> StoreResult<Vec<(String, String)>> {
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let (list, binds) = list_of(1, groups);
        let sql = format!(
            "SELECT group_id, user_id FROM scim_group_members WHERE group_id IN ({list}) \
             ORDER BY user_id"
        );
        let rows = with_pool!(self, |pool| {
            bind_all!(sqlx::query_as(&sql), &binds)
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(condition: &ScimCondition, kind: ScimKind) -> (String, usize) {
        let mut binds = vec![Bind::Text("idp".into())];
        let sql = condition.render(kind, &mut binds);
        (sql, binds.len())
    }

    #[test]
    fn indexed_conditions_name_their_candidates() {
        let mut binds = vec![Bind::Text("idp".into())];
        let either = ScimCondition::Any(vec![
            ScimCondition::UserName("a".into()),
            ScimCondition::Email("b".into()),
        ]);
        assert_eq!(
            either.candidates(ScimKind::Users, &mut binds),
            Some(
                "SELECT seq FROM scim_users WHERE idp_id = $1 AND user_name_key = $2 UNION ALL \
                 SELECT u.seq FROM scim_user_emails e JOIN scim_users u ON u.id = e.user_id \
                 WHERE e.idp_id = $1 AND e.email_key = $3"
                    .to_string()
            )
        );
        let narrowed = ScimCondition::All(vec![
            ScimCondition::DisplayNameContains("x".into()),
            ScimCondition::HasMember("u".into()),
        ]);
        assert!(narrowed.candidates(ScimKind::Groups, &mut binds).is_some());
        let before = binds.len();
        for unindexed in [
            ScimCondition::always(),
            ScimCondition::Not(Box::new(ScimCondition::Id("x".into()))),
            ScimCondition::Any(vec![
                ScimCondition::Id("x".into()),
                ScimCondition::DisplayNameContains("y".into()),
            ]),
            ScimCondition::DisplayName("a".into()),
        ] {
            assert_eq!(unindexed.candidates(ScimKind::Users, &mut binds), None);
            assert_eq!(binds.len(), before, "no value is left unused");
        }
    }

    #[test]
    fn conditions_render_with_numbered_values() {
        let condition = ScimCondition::Any(vec![
            ScimCondition::UserName("a".into()),
            ScimCondition::Not(Box::new(ScimCondition::ExternalId("x".into()))),
            ScimCondition::Email("a@b.c".into()),
        ]);
        assert_eq!(
            rendered(&condition, ScimKind::Users),
            (
                "(user_name_key = $2 OR NOT ((external_id IS NOT NULL AND external_id = $3)) \
                 OR id IN (SELECT user_id FROM scim_user_emails WHERE idp_id = $1 AND email_key = $4))"
                    .to_string(),
                4
            )
        );
        assert_eq!(
            rendered(&condition, ScimKind::Groups).0,
            "(1 = 0 OR NOT ((external_id IS NOT NULL AND external_id = $2)) OR 1 = 0)"
        );
        assert_eq!(
            rendered(&ScimCondition::always(), ScimKind::Users).0,
            "1 = 1"
        );
        assert_eq!(
            rendered(&ScimCondition::never(), ScimKind::Groups).0,
            "1 = 0"
        );
    }
}
