//! The permission-group catalog, as tokens refer to it.

use axum::Router;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::envelope::Success;
use super::extract::ApiQuery;
use crate::app::AppState;
use crate::auth::Authorized;
use crate::auth::operations::TokensRead;
use crate::domain::permission::{CATALOG, PermissionGroup, SCOPE_USER};
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/accounts/{account_id}/tokens/permission_groups",
        get(list_permission_groups),
    )
}

#[derive(Serialize)]
struct GroupView {
    id: &'static str,
    name: &'static str,
    description: &'static str,
    scopes: [&'static str; 1],
    category: &'static str,
    is_selectable: bool,
}

impl From<&'static PermissionGroup> for GroupView {
    fn from(group: &'static PermissionGroup) -> Self {
        Self {
            id: group.id,
            name: group.name,
            description: group.description,
            scopes: [group.scope],
            category: group.category,
            is_selectable: true,
        }
    }
}

#[derive(Deserialize)]
pub struct GroupQuery {
    name: Option<String>,
    scope: Option<String>,
}

/// <https://developers.cloudflare.com/api/resources/accounts/subresources/tokens/subresources/permission_groups/methods/list/>
///
/// Account-owned tokens can hold account and zone groups, so user-level
/// groups are left out. `name` and `scope` filter by exact match.
async fn list_permission_groups(
    _caller: Authorized<TokensRead>,
    ApiQuery(query): ApiQuery<GroupQuery>,
) -> Result<Success<Vec<GroupView>>, ApiError> {
    let groups = CATALOG
        .iter()
        .filter(|g| g.scope != SCOPE_USER)
        .filter(|g| query.name.as_deref().is_none_or(|name| g.name == name))
        .filter(|g| query.scope.as_deref().is_none_or(|scope| g.scope == scope))
        .map(GroupView::from)
        .collect();
    Ok(Success::all(groups))
}
