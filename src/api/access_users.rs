//! Access users: `/accounts/{account_id}/access/users[/{user_id}]`.

use axum::Router;
use axum::extract::{OriginalUri, Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::accounts::Deleted;
use super::envelope::Success;
use super::extract::{AccessJson, AccessQuery, PageLimits, PageParams};
use super::snapshots::listing_key;
use crate::app::AppState;
use crate::auth::Authorized;
use crate::auth::operations::{SeatsWrite, UsersRead};
use crate::domain::user::{self, AccessUser, Email, SeatId, UserId};
use crate::domain::{AccountId, Timestamp};
use crate::error::{ApiError, Family};
use crate::listing;
use crate::store::StoreError;
use crate::store::snapshot::ListingScope;
use crate::store::users::UserFilter;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/accounts/{account_id}/access/users",
            get(list_users).post(create_user),
        )
        .route(
            "/accounts/{account_id}/access/users/{user_id}",
            get(get_user).put(update_user).delete(delete_user),
        )
}

/// The User object; every field is always present, `null` where unknown.
#[derive(Serialize)]
pub struct UserView {
    id: UserId,
    access_seat: bool,
    active_device_count: i64,
    created_at: Timestamp,
    email: String,
    gateway_seat: bool,
    last_successful_login: Option<Timestamp>,
    name: Option<String>,
    seat_uid: SeatId,
    uid: UserId,
    updated_at: Timestamp,
}

impl From<AccessUser> for UserView {
    fn from(user: AccessUser) -> Self {
        Self {
            uid: user.id.clone(),
            id: user.id,
            access_seat: user.seat.access,
            active_device_count: user.active_device_count,
            created_at: user.created_at,
            email: user.email.as_str().to_string(),
            gateway_seat: user.seat.gateway,
            last_successful_login: user.last_successful_login,
            name: user.name,
            seat_uid: user.seat.id,
            updated_at: user.updated_at,
        }
    }
}

pub fn user_not_found() -> ApiError {
    ApiError::access_not_found("user not found")
}

#[derive(Deserialize)]
pub struct UserPath {
    #[allow(dead_code, reason = "validated by the Authorized extractor")]
    account_id: String,
    pub user_id: String,
}

/// Loads the user named in the path; a malformed id names no user.
pub async fn load_user(
    state: &AppState,
    account: &AccountId,
    raw_id: &str,
) -> Result<AccessUser, ApiError> {
    let id = UserId::parse(raw_id).ok_or_else(user_not_found)?;
    state
        .store
        .find_user(account, &id)
        .await?
        .ok_or_else(user_not_found)
}

#[derive(Deserialize)]
pub struct ListUsersQuery {
    email: Option<String>,
    name: Option<String>,
    search: Option<String>,
}

/// `per_page` accepts 1–1000. The default is 1000 so that an SDK's
/// auto-paginating `list()`, which never sends `per_page`, makes few requests.
const USER_PAGES: PageLimits = PageLimits {
    min_per_page: 1,
    max_per_page: 1000,
    default_per_page: 1000,
};

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/users/methods/list/>
async fn list_users(
    State(state): State<AppState>,
    caller: Authorized<UsersRead>,
    OriginalUri(uri): OriginalUri,
    AccessQuery(query): AccessQuery<ListUsersQuery>,
    AccessQuery(pages): AccessQuery<PageParams>,
) -> Result<Success<Vec<UserView>>, ApiError> {
    let page = pages
        .resolve(&USER_PAGES)
        .map_err(|e| e.in_family(Family::Access))?;
    let filter = UserFilter {
        email: non_empty(query.email),
        name: non_empty(query.name),
        search: non_empty(query.search),
    };
    let key = listing_key(&caller.principal, uri.path(), uri.query());
    let reading = listing::open(
        &state.store,
        key,
        page.page <= 1,
        ListingScope::AccessUsers,
        caller.account.as_str(),
    )
    .await?;
    let users = state
        .store
        .list_users(&caller.account, &filter, &reading.snapshot, page)
        .await?;
    reading.keep_for_later_pages(&state.store, &users).await?;
    Ok(Success::page(users.map(UserView::from)))
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/users/methods/get/>
async fn get_user(
    State(state): State<AppState>,
    caller: Authorized<UsersRead>,
    Path(path): Path<UserPath>,
) -> Result<Success<UserView>, ApiError> {
    let user = load_user(&state, &caller.account, &path.user_id).await?;
    Ok(Success::ok(user.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    email: String,
    #[serde(default)]
    name: Option<String>,
}

fn parse_email(raw: &str) -> Result<Email, ApiError> {
    Email::parse(raw).map_err(|why| ApiError::field("/email", why).in_family(Family::Access))
}

fn parse_name(raw: &str) -> Result<String, ApiError> {
    user::parse_name(raw).map_err(|why| ApiError::field("/name", why).in_family(Family::Access))
}

fn duplicate_email(email: &Email) -> ApiError {
    ApiError::conflict(
        12131,
        format!(
            "access.api.error.conflict: a user with email {} already exists in this account",
            email.as_str()
        ),
    )
}

/// An SDK retries a create whose answer it did not receive; such a retry
/// (`X-Stainless-Retry-Count` above 0) finds the user its first try made.
fn is_sdk_retry(headers: &HeaderMap) -> bool {
    headers
        .get("x-stainless-retry-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok())
        .is_some_and(|n| n > 0)
}

/// How recent a user must be for a retried create to be taken as its replay.
const REPLAY_WINDOW_SECONDS: i64 = 120;

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/users/methods/create/>
async fn create_user(
    State(state): State<AppState>,
    caller: Authorized<SeatsWrite>,
    headers: HeaderMap,
    AccessJson(body): AccessJson<CreateUserRequest>,
) -> Result<Success<UserView>, ApiError> {
    let email = parse_email(&body.email)?;
    let name = body.name.as_deref().map(parse_name).transpose()?;
    let now = Timestamp::now();
    let user = AccessUser::new(caller.account.clone(), email, name, now);
    match state.store.create_user(&user).await {
        Ok(()) => Ok(Success::created(user.into())),
        Err(StoreError::Conflict(_)) => {
            let existing = state
                .store
                .find_user_by_email(&caller.account, user.email.as_str())
                .await?;
            match existing {
                Some(first_try)
                    if is_sdk_retry(&headers)
                        && first_try.name == user.name
                        && now < first_try.created_at.plus_seconds(REPLAY_WINDOW_SECONDS) =>
                {
                    Ok(Success::created(first_try.into()))
                }
                _ => Err(duplicate_email(&user.email)),
            }
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    email: String,
    name: String,
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/users/methods/update/>
///
/// The e-mail confirms which user is meant; it cannot be changed.
async fn update_user(
    State(state): State<AppState>,
    caller: Authorized<SeatsWrite>,
    Path(path): Path<UserPath>,
    AccessJson(body): AccessJson<UpdateUserRequest>,
) -> Result<Success<UserView>, ApiError> {
    let mut user = load_user(&state, &caller.account, &path.user_id).await?;
    if Email::key_of(&body.email) != user.email.key() {
        return Err(ApiError::field(
            "/email",
            format!(
                "email cannot be changed; send the user's current email ({})",
                user.email.as_str()
            ),
        )
        .in_family(Family::Access));
    }
    user.name = Some(parse_name(&body.name)?);
    user.updated_at = Timestamp::now();
    if !state.store.rename_user(&user).await? {
        return Err(user_not_found());
    }
    Ok(Success::ok(user.into()))
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/users/methods/delete/>
///
/// Frees the user's seat and revokes their sessions in the same transaction.
async fn delete_user(
    State(state): State<AppState>,
    caller: Authorized<SeatsWrite>,
    Path(path): Path<UserPath>,
) -> Result<Success<Deleted<UserId>>, ApiError> {
    let id = UserId::parse(&path.user_id).ok_or_else(user_not_found)?;
    if !state
        .store
        .delete_user(&caller.account, &id, Timestamp::now())
        .await?
    {
        return Err(user_not_found());
    }
    Ok(Success::accepted(Deleted { id }))
}
