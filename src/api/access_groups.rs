//! Access groups: `/accounts/{account_id}/access/groups…`, and the checks
//! every `group` rule passes before a policy or a group holding it is saved.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::accounts::Deleted;
use super::envelope::Success;
use super::extract::{AccessJson, AccessQuery, PageLimits, PageParams};
use super::policies::{check_rules, still_in_use};
use crate::app::AppState;
use crate::auth::Authorized;
use crate::auth::operations::{GroupsRead, GroupsWrite};
use crate::domain::access_group::{AccessGroup, AccessGroupId, GroupBook};
use crate::domain::policy::{Rule, Rules};
use crate::domain::{AccountId, Timestamp};
use crate::error::{ApiError, Family};
use crate::store::access_groups::GroupFilter;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/accounts/{account_id}/access/groups",
            get(list_groups).post(create_group),
        )
        .route(
            "/accounts/{account_id}/access/groups/{group_id}",
            get(get_group).put(update_group).delete(delete_group),
        )
}

fn invalid(pointer: &str, message: impl Into<String>) -> ApiError {
    ApiError::field(pointer, message).in_family(Family::Access)
}

fn group_not_found() -> ApiError {
    ApiError::access_not_found("group not found")
}

/// Each `group` rule's place (`/include/3`) and id, in list order.
fn group_rules_mut(rules: &mut Rules) -> impl Iterator<Item = (String, &mut String)> {
    [
        ("include", &mut rules.include),
        ("exclude", &mut rules.exclude),
        ("require", &mut rules.require),
    ]
    .into_iter()
    .flat_map(|(name, list)| {
        list.iter_mut()
            .enumerate()
            .filter_map(move |(i, rule)| match rule {
                Rule::Group { id } => Some((format!("/{name}/{i}"), id)),
                _ => None,
            })
    })
}

/// Checks that every `group` rule names an Access group or a SCIM group of
/// the account (400 naming the first that names neither), and writes
/// Access group ids in their canonical form. Returns the account's groups.
pub async fn check_group_references(
    state: &AppState,
    account: &AccountId,
    rules: &mut Rules,
) -> Result<GroupBook, ApiError> {
    let book = state.store.access_group_book(account).await?;
    let mut others = Vec::new();
    for (_, id) in group_rules_mut(rules) {
        match book.get(id) {
            Some((canonical, _)) => *id = canonical.to_string(),
            None => others.push(id.clone()),
        }
    }
    if others.is_empty() {
        return Ok(book);
    }
    others.sort_unstable();
    others.dedup();
    let scim = state.store.scim_groups_among(account, &others).await?;
    for (pointer, id) in group_rules_mut(rules) {
        if book.get(id).is_none() && !scim.contains(&id.to_lowercase()) {
            return Err(invalid(
                &pointer,
                format!("group {id} is neither an Access group nor a SCIM group of this account"),
            ));
        }
    }
    Ok(book)
}

/// A group as Cloudflare returns it. `is_default` is left out: the SDKs
/// type it as a list of rules in responses, so the stored bool would break
/// their strict validation.
#[derive(Serialize)]
pub struct GroupView {
    id: AccessGroupId,
    name: String,
    include: Vec<Rule>,
    exclude: Vec<Rule>,
    require: Vec<Rule>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<AccessGroup> for GroupView {
    fn from(group: AccessGroup) -> Self {
        Self {
            id: group.id,
            name: group.name,
            include: group.rules.include,
            exclude: group.rules.exclude,
            require: group.rules.require,
            created_at: group.created_at,
            updated_at: group.updated_at,
        }
    }
}

/// The body of create and replace. Read-only fields of a fetched group are
/// accepted and ignored, so a group can be sent back as it was read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRequest {
    name: String,
    include: Vec<Rule>,
    #[serde(default)]
    exclude: Vec<Rule>,
    #[serde(default)]
    require: Vec<Rule>,
    #[serde(default)]
    is_default: Option<bool>,
    #[allow(
        dead_code,
        reason = "read-only; accepted so a fetched group can be sent back"
    )]
    #[serde(default)]
    id: Option<Value>,
    #[allow(
        dead_code,
        reason = "read-only; accepted so a fetched group can be sent back"
    )]
    #[serde(default)]
    created_at: Option<Value>,
    #[allow(
        dead_code,
        reason = "read-only; accepted so a fetched group can be sent back"
    )]
    #[serde(default)]
    updated_at: Option<Value>,
}

struct ValidGroup {
    name: String,
    rules: Rules,
    is_default: bool,
}

impl GroupRequest {
    /// Checks the body, its references, and that saving it as `id` makes no
    /// cycle and no nesting past the limit.
    async fn validate(
        self,
        state: &AppState,
        account: &AccountId,
        id: &AccessGroupId,
    ) -> Result<ValidGroup, ApiError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 350 {
            return Err(invalid("/name", "name must be 1 to 350 characters"));
        }
        if self.include.is_empty() {
            return Err(invalid(
                "/include",
                "a group needs at least one include rule",
            ));
        }
        let mut rules = Rules {
            include: self.include,
            exclude: self.exclude,
            require: self.require,
        };
        check_rules(&rules)?;
        let mut book = check_group_references(state, account, &mut rules).await?;
        if let Err(why) = book.replace_checked(id, rules.clone()) {
            let pointer = group_rules_mut(&mut rules)
                .find(|(_, named)| book.get(named).is_some())
                .map_or_else(|| "/include".to_string(), |(pointer, _)| pointer);
            return Err(invalid(&pointer, why.to_string()));
        }
        Ok(ValidGroup {
            name: name.to_string(),
            rules,
            is_default: self.is_default.unwrap_or(false),
        })
    }
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/groups/methods/create/>
async fn create_group(
    State(state): State<AppState>,
    caller: Authorized<GroupsWrite>,
    AccessJson(body): AccessJson<GroupRequest>,
) -> Result<Success<GroupView>, ApiError> {
    let id = AccessGroupId::generate();
    let valid = body.validate(&state, &caller.account, &id).await?;
    let now = Timestamp::now();
    let group = AccessGroup {
        id,
        account_id: caller.account,
        name: valid.name,
        rules: valid.rules,
        is_default: valid.is_default,
        created_at: now,
        updated_at: now,
    };
    state.store.create_access_group(&group).await?;
    Ok(Success::created(group.into()))
}

#[derive(Deserialize)]
pub struct GroupListQuery {
    name: Option<String>,
    search: Option<String>,
}

const GROUP_PAGES: PageLimits = PageLimits {
    min_per_page: 1,
    max_per_page: 1000,
    default_per_page: 100,
};

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/groups/methods/list/>
async fn list_groups(
    State(state): State<AppState>,
    caller: Authorized<GroupsRead>,
    AccessQuery(query): AccessQuery<GroupListQuery>,
    AccessQuery(pages): AccessQuery<PageParams>,
) -> Result<Success<Vec<GroupView>>, ApiError> {
    let page = pages
        .resolve(&GROUP_PAGES)
        .map_err(|e| e.in_family(Family::Access))?;
    let filter = GroupFilter {
        name: query.name.filter(|n| !n.is_empty()),
        search: query.search.filter(|s| !s.is_empty()),
    };
    let groups = state
        .store
        .list_access_groups(&caller.account, &filter, page)
        .await?;
    Ok(Success::page(crate::store::Page {
        items: groups.items.into_iter().map(GroupView::from).collect(),
        request: groups.request,
        total_count: groups.total_count,
    }))
}

#[derive(Deserialize)]
pub struct GroupPath {
    #[allow(dead_code, reason = "validated by the Authorized extractor")]
    account_id: String,
    group_id: String,
}

async fn load(state: &AppState, account: &AccountId, raw: &str) -> Result<AccessGroup, ApiError> {
    let id = AccessGroupId::parse(raw).ok_or_else(group_not_found)?;
    state
        .store
        .find_access_group(account, &id)
        .await?
        .ok_or_else(group_not_found)
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/groups/methods/get/>
async fn get_group(
    State(state): State<AppState>,
    caller: Authorized<GroupsRead>,
    Path(path): Path<GroupPath>,
) -> Result<Success<GroupView>, ApiError> {
    let group = load(&state, &caller.account, &path.group_id).await?;
    Ok(Success::ok(group.into()))
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/groups/methods/update/>
///
/// A full replacement: a rule list left out becomes empty.
async fn update_group(
    State(state): State<AppState>,
    caller: Authorized<GroupsWrite>,
    Path(path): Path<GroupPath>,
    AccessJson(body): AccessJson<GroupRequest>,
) -> Result<Success<GroupView>, ApiError> {
    let mut group = load(&state, &caller.account, &path.group_id).await?;
    let valid = body.validate(&state, &caller.account, &group.id).await?;
    group.name = valid.name;
    group.rules = valid.rules;
    group.is_default = valid.is_default;
    group.updated_at = Timestamp::now();
    if !state.store.replace_access_group(&group).await? {
        return Err(group_not_found());
    }
    Ok(Success::ok(group.into()))
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/groups/methods/delete/>
///
/// A group a policy or another group still names is not deleted (409).
async fn delete_group(
    State(state): State<AppState>,
    caller: Authorized<GroupsWrite>,
    Path(path): Path<GroupPath>,
) -> Result<Success<Deleted<AccessGroupId>>, ApiError> {
    let id = AccessGroupId::parse(&path.group_id).ok_or_else(group_not_found)?;
    match state.store.delete_access_group(&caller.account, &id).await {
        Ok(true) => Ok(Success::accepted(Deleted { id })),
        Ok(false) => Err(group_not_found()),
        Err(err) => Err(still_in_use(err)),
    }
}
