use tracing::instrument;

use super::{
    Bind, Page, PageRequest, Store, StoreError, StoreResult, conflict_on_unique, corrupt,
    escape_like, like_pattern, with_pool, with_writer,
};
use crate::domain::app::{AccessApp, PolicyLink};
use crate::domain::policy::AccessPolicy;
use crate::domain::{AccessPolicyId, AccountId, AppId, Timestamp};

/// Claims a host for an account unless another account holds it.
const CLAIM_HOST: &str = "INSERT INTO access_host_owners (hostname, account_id) VALUES ($1, $2) \
                          ON CONFLICT (hostname) DO NOTHING";

/// Lets go of the account's hosts none of its applications claim any more.
const RELEASE_UNUSED_HOSTS: &str = "DELETE FROM access_host_owners WHERE account_id = $1 AND NOT EXISTS (\
     SELECT 1 FROM access_app_hosts AS hosts JOIN access_apps AS apps ON apps.id = hosts.app_id \
     WHERE apps.account_id = $1 AND (hosts.host = access_host_owners.hostname \
     OR hosts.host LIKE access_host_owners.hostname || '/%'))";

/// A host, or a host and path, that an application protects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostClaim {
    /// `host[:port]` or `host[:port]/path`, lowercase.
    pub claimed: String,
    pub app_id: String,
}

impl HostClaim {
    /// Of the claims on `host`, the one protecting `path`: the longest
    /// claimed path that is `path` or a whole-segment prefix of it.
    pub fn for_path<'a>(claims: &'a [HostClaim], host: &str, path: &str) -> Option<&'a HostClaim> {
        let path = path.to_ascii_lowercase();
        claims
            .iter()
            .filter(|claim| match claim.claimed.strip_prefix(host) {
                Some("") => true,
                Some(claimed_path) => path
                    .strip_prefix(claimed_path)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
                None => false,
            })
            .max_by_key(|claim| claim.claimed.len())
    }

    /// The application a host as a whole stands for: the one claiming the
    /// host itself, else the one claiming the shortest path below it.
    pub fn serving_host(claims: &[HostClaim]) -> Option<&HostClaim> {
        claims
            .iter()
            .min_by(|a, b| (a.claimed.len(), &a.claimed).cmp(&(b.claimed.len(), &b.claimed)))
    }
}

#[derive(sqlx::FromRow)]
struct AppRow {
    id: String,
    account_id: String,
    aud: String,
    name: String,
    domain: String,
    session_duration: String,
    settings: String,
    created_at: i64,
    updated_at: i64,
}

impl AppRow {
    fn into_app(self, policies: Vec<PolicyLink>) -> StoreResult<AccessApp> {
        Ok(AccessApp {
            id: AppId::parse(&self.id).ok_or_else(|| corrupt("app id"))?,
            account_id: AccountId::parse(&self.account_id).ok_or_else(|| corrupt("account id"))?,
            aud: self.aud,
            name: self.name,
            domain: self.domain,
            session_duration: self.session_duration,
            settings: serde_json::from_str(&self.settings).map_err(corrupt)?,
            policies,
            created_at: Timestamp::from_micros(self.created_at),
            updated_at: Timestamp::from_micros(self.updated_at),
        })
    }
}

const COLUMNS: &str =
    "id, account_id, aud, name, domain, session_duration, settings, created_at, updated_at";

/// The filters of `GET /access/apps`; `exact` turns substring matches into equality.
#[derive(Debug, Default, Clone)]
pub struct AppFilter {
    pub name: Option<String>,
    pub domain: Option<String>,
    pub aud: Option<String>,
    pub search: Option<String>,
    pub exact: bool,
}

impl Store {
    /// Creates or replaces the application and its policy links in one transaction.
    #[instrument(skip_all)]
    pub async fn save_app(&self, app: &AccessApp, is_new: bool) -> StoreResult<bool> {
        let insert = format!(
            "INSERT INTO access_apps ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        );
        let update = "UPDATE access_apps SET name = $4, domain = $5, session_duration = $6, settings = $7, \
                      updated_at = $9 WHERE id = $1 AND account_id = $2 AND aud = $3";
        let settings = serde_json::to_string(&app.settings).map_err(corrupt)?;
        let saved = with_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            let affected = sqlx::query(if is_new { &insert } else { update })
                .bind(app.id.as_str())
                .bind(app.account_id.as_str())
                .bind(&app.aud)
                .bind(&app.name)
                .bind(&app.domain)
                .bind(&app.session_duration)
                .bind(&settings)
                .bind(app.created_at.micros())
                .bind(app.updated_at.micros())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if affected > 0 {
                sqlx::query("DELETE FROM access_app_policies WHERE app_id = $1")
                    .bind(app.id.as_str())
                    .execute(&mut *tx)
                    .await?;
                for link in &app.policies {
                    sqlx::query("INSERT INTO access_app_policies (app_id, policy_id, precedence) VALUES ($1, $2, $3)")
                        .bind(app.id.as_str())
                        .bind(link.policy_id.as_str())
                        .bind(link.precedence)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("DELETE FROM access_app_hosts WHERE app_id = $1")
                    .bind(app.id.as_str())
                    .execute(&mut *tx)
                    .await?;
                for hostname in app.hostnames() {
                    sqlx::query(CLAIM_HOST)
                        .bind(hostname)
                        .bind(app.account_id.as_str())
                        .execute(&mut *tx)
                        .await?;
                    let owner: String = sqlx::query_scalar(
                        "SELECT account_id FROM access_host_owners WHERE hostname = $1",
                    )
                    .bind(hostname)
                    .fetch_one(&mut *tx)
                    .await?;
                    if owner != app.account_id.as_str() {
                        return Err(StoreError::Conflict(format!(
                            "access.api.error.application_already_exists: {hostname} belongs to another account"
                        )));
                    }
                }
                for host in app.domains() {
                    sqlx::query("INSERT INTO access_app_hosts (host, app_id) VALUES ($1, $2)")
                        .bind(host)
                        .bind(app.id.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(conflict_on_unique(&format!(
                            "access.api.error.application_already_exists: {host} is already protected"
                        )))?;
                }
                sqlx::query(RELEASE_UNUSED_HOSTS)
                    .bind(app.account_id.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            affected > 0
        });
        Ok(saved)
    }

    async fn policy_links(&self, app: &str) -> StoreResult<Vec<PolicyLink>> {
        let sql = "SELECT policy_id, precedence FROM access_app_policies WHERE app_id = $1 ORDER BY precedence, policy_id";
        let rows: Vec<(String, i64)> = with_pool!(self, |pool| {
            sqlx::query_as(sql).bind(app).fetch_all(pool).await?
        });
        rows.into_iter()
            .map(|(id, precedence)| {
                Ok(PolicyLink {
                    policy_id: AccessPolicyId::parse(&id).ok_or_else(|| corrupt("policy id"))?,
                    precedence,
                })
            })
            .collect()
    }

    async fn with_links(&self, row: AppRow) -> StoreResult<AccessApp> {
        let links = self.policy_links(&row.id).await?;
        row.into_app(links)
    }

    /// The first application matching `condition`, whose `$N` take `binds` in order.
    async fn find_app_where(
        &self,
        condition: &str,
        binds: &[&str],
    ) -> StoreResult<Option<AccessApp>> {
        let sql = format!("SELECT {COLUMNS} FROM access_apps WHERE {condition}");
        let row: Option<AppRow> = with_pool!(self, |pool| {
            let mut query = sqlx::query_as(&sql);
            for value in binds {
                query = query.bind(*value);
            }
            query.fetch_optional(pool).await?
        });
        match row {
            Some(row) => self.with_links(row).await.map(Some),
            None => Ok(None),
        }
    }

    #[instrument(skip_all)]
    pub async fn find_app(
        &self,
        account: &AccountId,
        id: &AppId,
    ) -> StoreResult<Option<AccessApp>> {
        self.find_app_where(
            "id = $1 AND account_id = $2",
            &[id.as_str(), account.as_str()],
        )
        .await
    }

    /// The application that claims `domain` (host and path) exactly, as its
    /// domain or a further self-hosted domain, in any account.
    #[instrument(skip_all)]
    pub async fn find_app_by_domain(&self, domain: &str) -> StoreResult<Option<AccessApp>> {
        self.find_app_where(
            "id = (SELECT app_id FROM access_app_hosts WHERE host = $1)",
            &[domain],
        )
        .await
    }

    /// Every claim on `host`: the host itself and paths below it.
    #[instrument(skip_all)]
    pub async fn host_claims(&self, host: &str) -> StoreResult<Vec<HostClaim>> {
        let below = format!("{}/%", escape_like(host));
        let claims: Vec<(String, String)> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT host, app_id FROM access_app_hosts WHERE host = $1 OR host LIKE $2 ESCAPE '\\'",
            )
            .bind(host)
            .bind(&below)
            .fetch_all(pool)
            .await?
        });
        Ok(claims
            .into_iter()
            .map(|(claimed, app_id)| HostClaim { claimed, app_id })
            .collect())
    }

    /// The application with this id, in any account.
    #[instrument(skip_all)]
    pub async fn find_app_by_id(&self, id: &str) -> StoreResult<Option<AccessApp>> {
        self.find_app_where("id = $1", &[id]).await
    }

    /// Whether applications claim `hostname` under some port, but not
    /// `host` (that hostname with the port asked for) itself.
    #[instrument(skip_all)]
    pub async fn claimed_under_another_port(
        &self,
        host: &str,
        hostname: &str,
    ) -> StoreResult<bool> {
        let with_port = format!("{}:%", escape_like(hostname));
        let sql = "SELECT \
                   EXISTS (SELECT 1 FROM access_host_owners WHERE hostname = $1 \
                           OR hostname LIKE $2 ESCAPE '\\'), \
                   EXISTS (SELECT 1 FROM access_host_owners WHERE hostname = $3)";
        let (named, exact): (bool, bool) = with_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(hostname)
                .bind(&with_port)
                .bind(host)
                .fetch_one(pool)
                .await?
        });
        Ok(named && !exact)
    }

    #[instrument(skip_all)]
    pub async fn list_apps(
        &self,
        account: &AccountId,
        filter: &AppFilter,
        page: PageRequest,
    ) -> StoreResult<Page<AccessApp>> {
        let text = |value: &Option<String>| -> Option<String> {
            value.as_ref().map(|v| {
                if filter.exact {
                    v.to_lowercase()
                } else {
                    like_pattern(v)
                }
            })
        };
        let op = if filter.exact { "=" } else { "LIKE" };
        let escape = if filter.exact { "" } else { " ESCAPE '\\'" };
        let condition = format!(
            "account_id = $1 AND ($2 IS NULL OR lower(name) {op} $2{escape}) \
             AND ($3 IS NULL OR lower(domain) {op} $3{escape}) AND ($4 IS NULL OR aud = $4) \
             AND ($5 IS NULL OR lower(name) LIKE $5 ESCAPE '\\' OR lower(domain) LIKE $5 ESCAPE '\\')"
        );
        let list_sql = format!(
            "SELECT {COLUMNS} FROM access_apps WHERE {condition} ORDER BY created_at, id LIMIT $6 OFFSET $7"
        );
        let count_sql = format!("SELECT COUNT(*) FROM access_apps WHERE {condition}");
        let (name, domain) = (text(&filter.name), text(&filter.domain));
        let aud = filter.aud.as_ref().map(|a| a.to_ascii_lowercase());
        let search = filter.search.as_deref().map(like_pattern);
        let binds = [
            Bind::Text(account.to_string()),
            Bind::OptText(name),
            Bind::OptText(domain),
            Bind::OptText(aud),
            Bind::OptText(search),
        ];
        let (rows, total) = self
            .fetch_page::<AppRow>(&list_sql, &count_sql, &binds, page)
            .await?;
        let mut apps = Vec::with_capacity(rows.len());
        for row in rows {
            apps.push(self.with_links(row).await?);
        }
        Ok(Page {
            items: apps,
            request: page,
            total_count: total,
        })
    }

    #[instrument(skip_all)]
    pub async fn delete_app(&self, account: &AccountId, id: &AppId) -> StoreResult<bool> {
        let affected = with_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            let affected = sqlx::query("DELETE FROM access_apps WHERE id = $1 AND account_id = $2")
                .bind(id.as_str())
                .bind(account.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(RELEASE_UNUSED_HOSTS)
                .bind(account.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            affected
        });
        Ok(affected > 0)
    }

    /// The application's policies in precedence order.
    #[instrument(skip_all)]
    pub async fn app_policies(&self, app: &AccessApp) -> StoreResult<Vec<(AccessPolicy, i64)>> {
        let mut policies = Vec::with_capacity(app.policies.len());
        for link in &app.policies {
            let policy = self
                .find_policy(&app.account_id, &link.policy_id)
                .await?
                .ok_or_else(|| StoreError::Corrupt("linked policy is missing".into()))?;
            policies.push((policy, link.precedence));
        }
        Ok(policies)
    }

    /// Application tokens issued before `now` stop being accepted.
    #[instrument(skip_all)]
    pub async fn revoke_app_tokens(&self, app: &AppId, now: Timestamp) -> StoreResult<()> {
        let sql = "INSERT INTO access_app_revocations (app_id, revoked_before) VALUES ($1, $2) \
                   ON CONFLICT (app_id) DO UPDATE SET revoked_before = excluded.revoked_before";
        with_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(app.as_str())
                .bind(now.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// For the application with `aud`: `None` when there is none, else when
    /// its tokens were last revoked (`Some(None)`: never). One query, as it
    /// runs on every token check.
    #[instrument(skip_all)]
    pub async fn app_revocation_by_aud(&self, aud: &str) -> StoreResult<Option<Option<Timestamp>>> {
        let sql = "SELECT r.revoked_before FROM access_apps a \
                   LEFT JOIN access_app_revocations r ON r.app_id = a.id WHERE a.aud = $1";
        let row: Option<(Option<i64>,)> = with_pool!(self, |pool| {
            sqlx::query_as(sql).bind(aud).fetch_optional(pool).await?
        });
        Ok(row.map(|(at,)| at.map(Timestamp::from_micros)))
    }
}
