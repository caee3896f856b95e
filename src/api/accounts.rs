//! Accounts: `/accounts` and `/accounts/{account_id}`.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::envelope::Success;
use super::extract::{ApiJson, ApiQuery, PageLimits, PageParams};
use crate::app::AppState;
use crate::auth::operations::{AccountRead, AccountWrite, AdminOnly};
use crate::auth::{Admin, Authenticated, Authorized, Principal};
use crate::domain::account::{self, Account, AccountSettings, AccountType};
use crate::domain::{AccountId, Timestamp};
use crate::error::ApiError;
use crate::store::SortDirection;
use crate::store::accounts::AccountFilter;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/accounts", get(list_accounts).post(create_account))
        .route(
            "/accounts/{account_id}",
            get(get_account).put(update_account).delete(delete_account),
        )
}

#[derive(Serialize)]
pub struct AccountView {
    id: AccountId,
    name: String,
    #[serde(rename = "type")]
    account_type: &'static str,
    created_on: Timestamp,
    settings: AccountSettings,
    managed_by: serde_json::Map<String, serde_json::Value>,
}

impl From<Account> for AccountView {
    fn from(account: Account) -> Self {
        Self {
            id: account.id,
            name: account.name,
            account_type: account.account_type.as_str(),
            created_on: account.created_on,
            settings: account.settings,
            managed_by: serde_json::Map::new(),
        }
    }
}

fn parse_type(raw: Option<&str>) -> Result<AccountType, ApiError> {
    match raw {
        None => Ok(AccountType::Standard),
        Some(raw) => AccountType::parse(raw).ok_or_else(|| {
            ApiError::field(
                "/type",
                format!("type must be \"standard\" or \"enterprise\", got {raw:?}"),
            )
        }),
    }
}

fn parse_name(raw: &str) -> Result<String, ApiError> {
    account::parse_name(raw).map_err(|why| ApiError::field("/name", format!("name {why}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountRequest {
    name: String,
    #[serde(rename = "type")]
    account_type: Option<String>,
    unit: Option<UnitRef>,
    standalone: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitRef {
    #[allow(
        dead_code,
        reason = "accepted for SDK compatibility; accessd has no tenant units"
    )]
    id: String,
}

/// <https://developers.cloudflare.com/api/resources/accounts/methods/create/>
async fn create_account(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(body): ApiJson<CreateAccountRequest>,
) -> Result<Success<AccountView>, ApiError> {
    if body.unit.is_some() && body.standalone == Some(true) {
        return Err(ApiError::field(
            "/standalone",
            "send either unit.id or standalone: true, not both",
        ));
    }
    let account = Account {
        id: AccountId::generate(),
        name: parse_name(&body.name)?,
        account_type: parse_type(body.account_type.as_deref())?,
        settings: AccountSettings::default(),
        created_on: Timestamp::now(),
    };
    state.store.create_account(&account).await?;
    Ok(Success::ok(account.into()))
}

#[derive(Deserialize)]
pub struct ListAccountsQuery {
    name: Option<String>,
    direction: Option<String>,
}

const ACCOUNT_PAGES: PageLimits = PageLimits {
    min_per_page: 5,
    max_per_page: 50,
    default_per_page: 20,
};

pub fn parse_direction(raw: Option<&str>) -> Result<SortDirection, ApiError> {
    match raw {
        None | Some("asc") => Ok(SortDirection::Asc),
        Some("desc") => Ok(SortDirection::Desc),
        Some(other) => Err(ApiError::invalid(
            None,
            format!("query parameter `direction` must be asc or desc, got {other:?}"),
        )),
    }
}

/// <https://developers.cloudflare.com/api/resources/accounts/methods/list/>
async fn list_accounts(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiQuery(query): ApiQuery<ListAccountsQuery>,
    ApiQuery(pages): ApiQuery<PageParams>,
) -> Result<Success<Vec<AccountView>>, ApiError> {
    if let Principal::Token(_) = caller.principal {
        return Err(ApiError::AccountTokenListsAccounts);
    }
    let page = pages.resolve(&ACCOUNT_PAGES)?;
    let direction = parse_direction(query.direction.as_deref())?;
    let filter = AccountFilter { name: query.name };
    let accounts = state.store.list_accounts(&filter, direction, page).await?;
    Ok(Success::page(accounts.map(AccountView::from)))
}

async fn load(state: &AppState, id: &AccountId) -> Result<Account, ApiError> {
    state
        .store
        .find_account(id)
        .await?
        .ok_or_else(|| ApiError::not_found(1003, "account not found"))
}

/// <https://developers.cloudflare.com/api/resources/accounts/methods/get/>
async fn get_account(
    State(state): State<AppState>,
    caller: Authorized<AccountRead>,
) -> Result<Success<AccountView>, ApiError> {
    Ok(Success::ok(load(&state, &caller.account).await?.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateAccountRequest {
    id: String,
    name: String,
    #[serde(rename = "type")]
    account_type: String,
    settings: Option<AccountSettings>,
    #[allow(
        dead_code,
        reason = "read-only; accepted so a fetched account can be sent back"
    )]
    managed_by: Option<serde_json::Value>,
    #[allow(
        dead_code,
        reason = "read-only; accepted so a fetched account can be sent back"
    )]
    created_on: Option<serde_json::Value>,
}

/// <https://developers.cloudflare.com/api/resources/accounts/methods/update/>
async fn update_account(
    State(state): State<AppState>,
    caller: Authorized<AccountWrite>,
    ApiJson(body): ApiJson<UpdateAccountRequest>,
) -> Result<Success<AccountView>, ApiError> {
    if AccountId::parse(&body.id).as_ref() != Some(&caller.account) {
        return Err(ApiError::field(
            "/id",
            format!("id must be the account in the path ({})", caller.account),
        ));
    }
    let mut account = load(&state, &caller.account).await?;
    account.name = parse_name(&body.name)?;
    account.account_type = parse_type(Some(&body.account_type))?;
    if let Some(settings) = body.settings {
        account.settings = settings;
    }
    if !state.store.update_account(&account).await? {
        return Err(ApiError::not_found(1003, "account not found"));
    }
    Ok(Success::ok(account.into()))
}

#[derive(Serialize)]
pub struct Deleted<Id> {
    pub id: Id,
}

/// <https://developers.cloudflare.com/api/resources/accounts/methods/delete/>
async fn delete_account(
    State(state): State<AppState>,
    caller: Authorized<AdminOnly>,
) -> Result<Success<Deleted<AccountId>>, ApiError> {
    if !state.store.delete_account(&caller.account).await? {
        return Err(ApiError::not_found(1003, "account not found"));
    }
    Ok(Success::ok(Deleted { id: caller.account }))
}
