//! The v4 view of what identity providers pushed over SCIM:
//! `/accounts/{account_id}/access/identity_providers/{idp_id}/scim/users|groups`.

use axum::Router;
use axum::extract::{OriginalUri, Path, State};
use axum::http::Uri;
use axum::routing::get;
use serde::Serialize;
use serde_json::Value;

use super::envelope::Success;
use super::extract::{PageLimits, PageParams};
use super::identity_providers::IdpPath;
use super::snapshots::listing_key;
use crate::app::AppState;
use crate::auth::Authorized;
use crate::auth::operations::IdpsRead;
use crate::domain::Timestamp;
use crate::error::{ApiError, Family};
use crate::listing;
use crate::scim::schema;
use crate::store::scim::ScimUserRecord;
use crate::store::scim_listing::{ScimCondition, ScimKind, ScimOrder, ScimSelection};
use crate::store::snapshot::{ListingScope, ListingSnapshot};
use crate::store::{Page, PageRequest};

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

impl ListingQuery {
    /// What the query asks of the provider's users or groups.
    fn condition(&self) -> ScimCondition {
        let mut all = Vec::new();
        if !self.cf_resource_ids.is_empty() {
            all.push(ScimCondition::Any(
                self.cf_resource_ids
                    .iter()
                    .cloned()
                    .map(ScimCondition::Id)
                    .collect(),
            ));
        }
        if !self.idp_resource_ids.is_empty() {
            all.push(ScimCondition::Any(
                self.idp_resource_ids
                    .iter()
                    .cloned()
                    .map(ScimCondition::ExternalId)
                    .collect(),
            ));
        }
        if let Some(name) = &self.username {
            all.push(ScimCondition::UserName(name.to_lowercase()));
        }
        if let Some(email) = &self.email {
            all.push(ScimCondition::Email(email.to_lowercase()));
        }
        if let Some(name) = &self.name {
            all.push(ScimCondition::DisplayNameContains(name.to_lowercase()));
        }
        ScimCondition::All(all)
    }

    fn page(&self) -> Result<PageRequest, ApiError> {
        self.pages
            .resolve(&SCIM_PAGES)
            .map_err(|e| e.in_family(Family::Access))
    }
}

fn selection(condition: &ScimCondition, page: PageRequest) -> ScimSelection<'_> {
    ScimSelection {
        condition,
        after_seq: 0,
        order: ScimOrder::Created,
        offset: u64::try_from(page.offset()).unwrap_or(0),
        limit: u64::from(page.per_page),
    }
}

fn meta(created: Timestamp, last_modified: Timestamp) -> Meta {
    Meta {
        created,
        last_modified,
    }
}

impl From<ScimUserRecord> for ScimUserView {
    fn from(user: ScimUserRecord) -> Self {
        let mut shown = schema::USER.shown(&user.resource);
        ScimUserView {
            display_name: shown
                .remove("displayName")
                .and_then(|v| v.as_str().map(str::to_string)),
            emails: match shown.remove("emails") {
                Some(Value::Array(emails)) => emails,
                _ => Vec::new(),
            },
            meta: meta(user.created_at, user.updated_at),
            id: user.id,
            active: user.active,
            external_id: user.external_id,
            schemas: [crate::scim::USER_SCHEMA],
        }
    }
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/identity_providers/subresources/scim/subresources/users/methods/list/>
///
/// `username` and `email` match exactly and `name` as a substring of the
/// display name, all ignoring case. Later pages read the users as they were
/// at the first one.
async fn list_scim_users(
    State(state): State<AppState>,
    caller: Authorized<IdpsRead>,
    Path(path): Path<IdpPath>,
    OriginalUri(uri): OriginalUri,
) -> Result<Success<Vec<ScimUserView>>, ApiError> {
    let idp = super::identity_providers::load_idp(&state, &caller.account, path.idp_id()).await?;
    let query = parse_query(&uri, &["username", "email"])?;
    let page = query.page()?;
    let condition = query.condition();
    let key = listing_key(&caller.principal, uri.path(), uri.query());
    let reading = listing::open(
        &state.store,
        key,
        page.page <= 1,
        ListingScope::ScimUsers,
        idp.id.as_str(),
    )
    .await?;
    let store = &state.store;
    let total = store
        .count_scim(ScimKind::Users, &idp.id, &reading.snapshot, &condition)
        .await?;
    let users = store
        .select_scim_users(&idp.id, &reading.snapshot, &selection(&condition, page))
        .await?;
    let page = Page {
        items: users.into_iter().map(|(_, u)| u.into()).collect(),
        request: page,
        total_count: total,
    };
    reading.keep_for_later_pages(store, &page).await?;
    Ok(Success::page(page))
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
    let page = query.page()?;
    let condition = query.condition();
    let store = &state.store;
    let present = ListingSnapshot::present();
    let total = store
        .count_scim(ScimKind::Groups, &idp.id, &present, &condition)
        .await?;
    let groups = store
        .select_scim_groups(&idp.id, &selection(&condition, page))
        .await?;
    Ok(Success::page(Page {
        items: groups
            .into_iter()
            .map(|(_, g)| ScimGroupView {
                id: g.id,
                display_name: g.display_name,
                external_id: g.external_id,
                meta: meta(g.created_at, g.updated_at),
                schemas: [crate::scim::GROUP_SCHEMA],
            })
            .collect(),
        request: page,
        total_count: total,
    }))
}
