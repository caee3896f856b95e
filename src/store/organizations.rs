//! Zero Trust organizations, one per account.

use serde_json::{Map, Value};
use tracing::instrument;

use super::{Store, StoreResult, conflict_on_unique, corrupt, with_pool, with_writer};
use crate::domain::organization::Organization;
use crate::domain::{AccountId, Timestamp};

type OrganizationRow = (String, String, String, Option<String>, String, i64, i64);

const COLUMNS: &str =
    "account_id, auth_domain, name, session_duration, settings, created_at, updated_at";

fn from_row(row: OrganizationRow) -> StoreResult<Organization> {
    let settings: Map<String, Value> = serde_json::from_str(&row.4).map_err(corrupt)?;
    Ok(Organization {
        account_id: AccountId::parse(&row.0).ok_or_else(|| corrupt("account id"))?,
        auth_domain: row.1,
        name: row.2,
        session_duration: row.3,
        settings,
        created_at: Timestamp::from_micros(row.5),
        updated_at: Timestamp::from_micros(row.6),
    })
}

impl Store {
    #[instrument(skip_all)]
    pub async fn find_organization(
        &self,
        account: &AccountId,
    ) -> StoreResult<Option<Organization>> {
        let sql = format!("SELECT {COLUMNS} FROM access_organizations WHERE account_id = $1");
        let row: Option<OrganizationRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(account.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(from_row).transpose()
    }

    /// The organization whose team domain is `domain`.
    #[instrument(skip_all)]
    pub async fn find_organization_by_domain(
        &self,
        domain: &str,
    ) -> StoreResult<Option<Organization>> {
        let sql = format!("SELECT {COLUMNS} FROM access_organizations WHERE auth_domain = $1");
        let row: Option<OrganizationRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(domain)
                .fetch_optional(pool)
                .await?
        });
        row.map(from_row).transpose()
    }

    /// Creates the account's organization; a second one for the account, or
    /// a team domain another account has, is a conflict.
    #[instrument(skip_all)]
    pub async fn create_organization(&self, org: &Organization) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO access_organizations ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        );
        let settings = serde_json::to_string(&org.settings).map_err(corrupt)?;
        with_writer!(self, |pool| {
            sqlx::query(&sql)
                .bind(org.account_id.as_str())
                .bind(&org.auth_domain)
                .bind(&org.name)
                .bind(org.session_duration.as_deref())
                .bind(&settings)
                .bind(org.created_at.micros())
                .bind(org.updated_at.micros())
                .execute(pool)
                .await
                .map_err(conflict_on_unique(
                    "access.api.error.conflict: the account already has an organization, or another account has this auth_domain",
                ))?
                .rows_affected()
        });
        Ok(())
    }

    /// Replaces the organization's settings if it was not modified since
    /// `unchanged_since`; false when it was (or is gone).
    #[instrument(skip_all)]
    pub async fn replace_organization(
        &self,
        org: &Organization,
        unchanged_since: Timestamp,
    ) -> StoreResult<bool> {
        let sql = "UPDATE access_organizations SET auth_domain = $2, name = $3, session_duration = $4, \
                   settings = $5, updated_at = $6 WHERE account_id = $1 AND updated_at = $7";
        let settings = serde_json::to_string(&org.settings).map_err(corrupt)?;
        let affected = with_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(org.account_id.as_str())
                .bind(&org.auth_domain)
                .bind(&org.name)
                .bind(org.session_duration.as_deref())
                .bind(&settings)
                .bind(org.updated_at.micros())
                .bind(unchanged_since.micros())
                .execute(pool)
                .await
                .map_err(conflict_on_unique(
                    "access.api.error.conflict: another account has this auth_domain",
                ))?
                .rows_affected()
        });
        Ok(affected > 0)
    }
}
