//! The v4 view of what identity providers pushed over SCIM:
//! `/accounts/{account_id}/access/identity_providers/{idp_id}/scim/users|groups`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::routing::get;
use serde::Serialize;
use serde_json::Value;

use super::envelope::Success;
use super::extract::{PageLimits, PageParams};
use super::identity_providers::IdpPath;
use crate::app::AppState;
use crate::auth::Authorized;
use crate::auth::operations::IdpsRead;
use crate::domain::Timestamp;
use crate::error::{ApiError, Family};
use crate::scim::filter::get_ci;
use crate::store::Page;

pub fn router() -> Router<AppState> {
    let idp = "/accounts/{account_id}/access/identity_providers/{idp_id}";
    Router::new()
        .route(&format!("{idp}/scim/users"), get(list_scim_users))
        .route(&format!("{idp}/scim/groups"), get(list_scim_groups))
}

const SCIM_PAGES: PageLimits = PageLimits {
    min_per_page: 1,
    max_per_page: 100,
    default_per_page: 100,
};
const MAX_IDS: usize = 50;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::invalid(None, message).in_family(Family::Access)
}

/// The query, read by hand: `cf_resource_id` and `idp_resource_id` repeat.
#[derive(Default)]
struct ListingQuery {
    cf_resource_ids: Vec<String>,
    idp_resource_ids: Vec<String>,
    username: Option<String>,
    email: Option<String>,
    name: Option<String>,
    pages: PageParams,
}

fn parse_query(uri: &Uri, allowed: &[&str]) -> Result<ListingQuery, ApiError> {
    let mut query = ListingQuery::default();
    let number = |name: &str, raw: &str| {
        raw.parse::<i64>().map_err(|_| {
            invalid(format!(
                "query parameter `{name}` must be an integer, got {raw:?}"
            ))
        })
    };
    for (name, value) in form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        let value = value.into_owned();
        match name.as_ref() {
            "cf_resource_id" | "cf_resource_id[]" => query.cf_resource_ids.push(value),
            "idp_resource_id" | "idp_resource_id[]" => query.idp_resource_ids.push(value),
            "username" if allowed.contains(&"username") => query.username = Some(value),
            "email" if allowed.contains(&"email") => query.email = Some(value),
            "name" => query.name = Some(value),
            "page" => query.pages.page = Some(number("page", &value)?),
            "per_page" => query.pages.per_page = Some(number("per_page", &value)?),
            _ => {}
        }
    }
    if query.cf_resource_ids.len() > MAX_IDS || query.idp_resource_ids.len() > MAX_IDS {
        return Err(invalid(format!(
            "give at most {MAX_IDS} values of cf_resource_id or idp_resource_id"
        )));
    }
    let by_ids = !query.cf_resource_ids.is_empty() || !query.idp_resource_ids.is_empty();
    if !query.cf_resource_ids.is_empty() && !query.idp_resource_ids.is_empty() {
        return Err(invalid(
            "cf_resource_id and idp_resource_id cannot be combined",
        ));
    }
    if by_ids && (query.username.is_some() || query.email.is_some() || query.name.is_some()) {
        return Err(invalid(
            "cf_resource_id and idp_resource_id cannot be combined with username, email or name",
        ));
    }
    Ok(query)
}

#[derive(Serialize)]
struct Meta {
    created: Timestamp,
    #[serde(rename = "lastModified")]
    last_modified: Timestamp,
}

#[derive(Serialize)]
pub struct ScimUserView {
    id: String,
    active: bool,
    #[serde(rename = "displayName")]
    display_name: Option<String>,
    emails: Vec<Value>,
    #[serde(rename = "externalId")]
    external_id: Option<String>,
    meta: Meta,
    schemas: [&'static str; 1],
}

#[derive(Serialize)]
pub struct ScimGroupView {
    id: String,
    #[serde(rename = "displayName")]
    display_name: String,
    #[serde(rename = "externalId")]
    external_id: Option<String>,
    meta: Meta,
    schemas: [&'static str; 1],
}

fn paged<T>(items: Vec<T>, pages: &PageParams) -> Result<Success<Vec<T>>, ApiError>
where
    T: Serialize,
{
    let request = pages
        .resolve(&SCIM_PAGES)
        .map_err(|e| e.in_family(Family::Access))?;
    let total = items.len() as u64;
    let page: Vec<T> = items
        .into_iter()
        .skip(usize::try_from(request.offset()).unwrap_or(usize::MAX))
        .take(request.per_page as usize)
        .collect();
    Ok(Success::page(Page {
        items: page,
        request,
        total_count: total,
    }))
}

fn contains_ci(haystack: Option<&str>, needle: &str) -> bool {
    haystack.is_some_and(|h| h.to_lowercase().contains(&needle.to_lowercase()))
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/identity_providers/subresources/scim/subresources/users/methods/list/>
///
/// `username` and `email` match exactly and `name` as a substring of the
/// display name, all ignoring case.
async fn list_scim_users(
    State(state): State<AppState>,
    caller: Authorized<IdpsRead>,
    Path(path): Path<IdpPath>,
    uri: Uri,
) -> Result<Success<Vec<ScimUserView>>, ApiError> {
    let idp = super::identity_providers::load_idp(&state, &caller.account, path.idp_id()).await?;
    let query = parse_query(&uri, &["username", "email"])?;
    let users = state.store.list_scim_users(&idp.id).await?;
    let matching: Vec<ScimUserView> = users
        .into_iter()
        .filter(|u| query.cf_resource_ids.is_empty() || query.cf_resource_ids.contains(&u.id))
        .filter(|u| {
            query.idp_resource_ids.is_empty()
                || u.external_id
                    .as_ref()
                    .is_some_and(|e| query.idp_resource_ids.contains(e))
        })
        .filter(|u| {
            query
                .username
                .as_ref()
                .is_none_or(|name| u.user_name.eq_ignore_ascii_case(name))
        })
        .filter(|u| {
            query.email.as_ref().is_none_or(|wanted| {
                get_ci(&u.resource, "emails")
                    .and_then(Value::as_array)
                    .is_some_and(|emails| {
                        emails.iter().any(|e| {
                            get_ci(e, "value")
                                .and_then(Value::as_str)
                                .is_some_and(|v| v.eq_ignore_ascii_case(wanted))
                        })
                    })
            })
        })
        .filter(|u| {
            query.name.as_ref().is_none_or(|n| {
                contains_ci(
                    get_ci(&u.resource, "displayName").and_then(Value::as_str),
                    n,
                )
            })
        })
        .map(|u| ScimUserView {
            display_name: get_ci(&u.resource, "displayName")
                .and_then(Value::as_str)
                .map(str::to_string),
            emails: get_ci(&u.resource, "emails")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            id: u.id,
            active: u.active,
            external_id: u.external_id,
            meta: Meta {
                created: u.created_at,
                last_modified: u.updated_at,
            },
            schemas: [crate::scim::USER_SCHEMA],
        })
        .collect();
    paged(matching, &query.pages)
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/identity_providers/subresources/scim/subresources/groups/methods/list/>
async fn list_scim_groups(
    State(state): State<AppState>,
    caller: Authorized<IdpsRead>,
    Path(path): Path<IdpPath>,
    uri: Uri,
) -> Result<Success<Vec<ScimGroupView>>, ApiError> {
    let idp = super::identity_providers::load_idp(&state, &caller.account, path.idp_id()).await?;
    let query = parse_query(&uri, &[])?;
    let groups = state.store.list_scim_groups(&idp.id).await?;
    let matching: Vec<ScimGroupView> = groups
        .into_iter()
        .filter(|g| query.cf_resource_ids.is_empty() || query.cf_resource_ids.contains(&g.id))
        .filter(|g| {
            query.idp_resource_ids.is_empty()
                || g.external_id
                    .as_ref()
                    .is_some_and(|e| query.idp_resource_ids.contains(e))
        })
        .filter(|g| {
            query
                .name
                .as_ref()
                .is_none_or(|n| contains_ci(Some(&g.display_name), n))
        })
        .map(|g| ScimGroupView {
            id: g.id,
            display_name: g.display_name,
            external_id: g.external_id,
            meta: Meta {
                created: g.created_at,
                last_modified: g.updated_at,
            },
            schemas: [crate::scim::GROUP_SCHEMA],
        })
        .collect();
    paged(matching, &query.pages)
}
