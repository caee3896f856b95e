//! `/Users`: the provider's users, and what their changes do to Access.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::auth::ScimCaller;
use super::error::ScimError;
use super::filter::{AttrPath, Filter, get_ci};
use super::linking::{deprovision, follow_identity_change, link_email};
use super::patch::{self, PatchRequest};
use super::projection::Projection;
use super::schema;
use super::{MAX_COUNT, ScimJson, USER_SCHEMA, list_response, scim_json};
use crate::api::snapshots::keyed_listing;
use crate::app::AppState;
use crate::domain::Timestamp;
use crate::store::scim::ScimUserRecord;

/// Attributes compared with case (RFC 7643 §4.1: `id` and `externalId`).
const CASE_EXACT: &[&str] = &["id", "externalid"];

/// A User as sent by a provider, checked, with the attributes the store indexes.
struct ValidUser {
    resource: Map<String, Value>,
    user_name: String,
    external_id: Option<String>,
    active: bool,
}

/// Checks a User sent by a provider and reduces it to what is kept.
fn validate(input: Value) -> Result<ValidUser, ScimError> {
    let Value::Object(sent) = input else {
        return Err(ScimError::invalid_syntax("a User must be a JSON object"));
    };
    if let Some(schemas) = get_ci(&Value::Object(sent.clone()), "schemas") {
        let listed = schemas
            .as_array()
            .is_some_and(|s| s.iter().any(|v| v == USER_SCHEMA));
        if !listed {
            return Err(ScimError::invalid_syntax(format!(
                "schemas must include {USER_SCHEMA}"
            )));
        }
    }
    let resource = schema::USER.accept(sent)?;
    let emails = resource.get("emails").and_then(Value::as_array);
    if emails.is_some_and(|all| all.iter().any(|e| !e["value"].is_string())) {
        return Err(ScimError::invalid_value(
            "each of emails needs a string value",
        ));
    }
    let user_name = match resource.get("userName") {
        Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
        _ => return Err(ScimError::invalid_value("userName is required")),
    };
    let external_id = resource
        .get("externalId")
        .and_then(Value::as_str)
        .map(str::to_string);
    let active = resource
        .get("active")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    Ok(ValidUser {
        resource,
        user_name,
        external_id,
        active,
    })
}

/// The user as SCIM shows it; `groups` (read-only) comes from memberships.
fn representation(state: &AppState, user: &ScimUserRecord, groups: Vec<Value>) -> Value {
    let mut body = Map::new();
    body.insert("schemas".into(), json!([USER_SCHEMA]));
    body.insert("id".into(), json!(user.id));
    body.extend(schema::USER.shown(&user.resource));
    body.insert("groups".into(), Value::Array(groups));
    body.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": user.created_at.to_string(),
            "lastModified": user.updated_at.to_string(),
            "location": format!("{}/scim/v2/{}/Users/{}", state.public_url, user.idp_id, user.id),
            "version": format!("W/\"{}\"", user.version),
        }),
    );
    Value::Object(body)
}

/// A `POST …/.search` body (RFC 7644 §3.4.3).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SearchRequest {
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    start_index: Option<i64>,
    #[serde(default)]
    count: Option<i64>,
    #[serde(default)]
    sort_by: Option<String>,
    #[serde(default)]
    sort_order: Option<String>,
    #[serde(default)]
    attributes: Vec<String>,
    #[serde(default)]
    excluded_attributes: Vec<String>,
}

impl From<SearchRequest> for ListQuery {
    fn from(search: SearchRequest) -> Self {
        let joined = |names: Vec<String>| (!names.is_empty()).then(|| names.join(","));
        ListQuery {
            filter: search.filter,
            start_index: search.start_index.map(|n| n.to_string()),
            count: search.count.map(|n| n.to_string()),
            sort_by: search.sort_by,
            sort_order: search.sort_order,
            projection: Projection {
                attributes: joined(search.attributes),
                excluded_attributes: joined(search.excluded_attributes),
            },
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListQuery {
    filter: Option<String>,
    start_index: Option<String>,
    count: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    #[serde(flatten)]
    projection: Projection,
}

fn number(raw: &Option<String>, name: &str) -> Result<Option<i64>, ScimError> {
    raw.as_deref()
        .map(|v| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| ScimError::invalid_value(format!("{name} must be an integer")))
        })
        .transpose()
}

fn sort_key(resource: &Value, path: &AttrPath) -> Option<String> {
    let field = get_ci(resource, &path.attr)?;
    let value = match (&path.sub, field) {
        (Some(sub), Value::Array(items)) => items.first().and_then(|i| get_ci(i, sub)),
        (Some(sub), other) => get_ci(other, sub),
        (None, Value::Array(items)) => items.first().map(|i| get_ci(i, "value").unwrap_or(i)),
        (None, other) => Some(other),
    }?;
    Some(match value {
        Value::String(s) => s.to_lowercase(),
        other => other.to_string(),
    })
}

/// Filters, sorts and pages resources (`startIndex` is 1-based), then
/// applies `attributes` / `excludedAttributes`. That is CPU work over every
/// resource of the provider, so it runs on a blocking thread: however
/// costly the filter, the async workers keep answering other requests.
pub(super) async fn page_of(all: Vec<Value>, query: ListQuery) -> Result<Response, ScimError> {
    tokio::task::spawn_blocking(move || filtered_page(all, &query))
        .await
        .map_err(|err| ScimError::Internal(format!("listing failed: {err}")))?
}

fn filtered_page(all: Vec<Value>, query: &ListQuery) -> Result<Response, ScimError> {
    let filter = match query
        .filter
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        Some(raw) => Some(Filter::parse(raw).map_err(|e| ScimError::invalid_filter(e.0))?),
        None => None,
    };
    let start = number(&query.start_index, "startIndex")?
        .unwrap_or(1)
        .max(1) as usize;
    let count =
        number(&query.count, "count")?.map_or(100, |c| c.clamp(0, MAX_COUNT as i64) as usize);
    let mut matching: Vec<Value> = all
        .into_iter()
        .filter(|resource| {
            filter
                .as_ref()
                .is_none_or(|f| f.matches(resource, CASE_EXACT))
        })
        .collect();
    if let Some(sort_by) = query.sort_by.as_deref() {
        let path = AttrPath::parse(sort_by).ok_or_else(|| {
            ScimError::invalid_value(format!("sortBy {sort_by:?} is not an attribute"))
        })?;
        let descending = query
            .sort_order
            .as_deref()
            .is_some_and(|o| o.eq_ignore_ascii_case("descending"));
        // Each key is computed once, not once per comparison.
        let mut keyed: Vec<(Option<String>, Value)> = matching
            .into_iter()
            .map(|resource| (sort_key(&resource, &path), resource))
            .collect();
        // Resources without the attribute go last, whatever the order.
        keyed.sort_by(|(a, _), (b, _)| match (a, b) {
            (Some(x), Some(y)) if descending => y.cmp(x),
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        matching = keyed.into_iter().map(|(_, resource)| resource).collect();
    }
    let total = matching.len();
    let page = matching
        .into_iter()
        .skip(start - 1)
        .take(count)
        .map(|r| query.projection.apply(r))
        .collect();
    Ok(list_response(page, total, start))
}

/// `POST /Users/.search`: the same listing, asked in a body. It reads the
/// present state; pinned pages are for `GET` listings.
pub async fn search_users(
    State(state): State<AppState>,
    caller: ScimCaller,
    ScimJson(search): ScimJson<SearchRequest>,
) -> Result<Response, ScimError> {
    page_of(all_users(&state, &caller).await?, ListQuery::from(search)).await
}

/// Every user as it is now, as SCIM shows it.
pub(super) async fn all_users(
    state: &AppState,
    caller: &ScimCaller,
) -> Result<Vec<Value>, ScimError> {
    with_groups(
        state,
        caller,
        &crate::store::snapshot::ListingSnapshot::now(),
    )
    .await
}

/// The users of `snapshot` as SCIM shows them, with their groups.
async fn with_groups(
    state: &AppState,
    caller: &ScimCaller,
    snapshot: &crate::store::snapshot::ListingSnapshot,
) -> Result<Vec<Value>, ScimError> {
    let mut memberships: HashMap<String, Vec<Value>> = HashMap::new();
    for group in state.store.list_scim_groups(&caller.idp.id).await? {
        for member in &group.members {
            memberships.entry(member.clone()).or_default().push(json!({
                "value": group.id, "display": group.display_name,
                "$ref": format!("{}/scim/v2/{}/Groups/{}", state.public_url, group.idp_id, group.id),
            }));
        }
    }
    Ok(state
        .store
        .list_scim_users_at(&caller.idp.id, snapshot)
        .await?
        .iter()
        .map(|user| {
            representation(
                state,
                user,
                memberships.remove(&user.id).unwrap_or_default(),
            )
        })
        .collect())
}

/// `GET /Users`.
pub async fn list_users(
    State(state): State<AppState>,
    caller: ScimCaller,
    uri: axum::http::Uri,
    Query(query): Query<ListQuery>,
) -> Result<Response, ScimError> {
    // Pages after the first read the users as they were at the first one.
    let start = number(&query.start_index, "startIndex")?
        .unwrap_or(1)
        .max(1);
    let key = keyed_listing(
        &format!("scim:{}", caller.idp.id),
        uri.path(),
        uri.query(),
        "startIndex",
    );
    let snapshot = match state
        .snapshots
        .pinned(&key, u32::try_from(start).unwrap_or(u32::MAX))
    {
        Some(pinned) => pinned,
        None => {
            let fresh = state.store.scim_user_snapshot(&caller.idp.id).await?;
            state.snapshots.pin(key, fresh.clone());
            fresh
        }
    };
    let all = with_groups(&state, &caller, &snapshot).await?;
    page_of(all, query).await
}

async fn groups_of(state: &AppState, user: &ScimUserRecord) -> Result<Vec<Value>, ScimError> {
    Ok(state
        .store
        .scim_groups_of_user(&user.id)
        .await?
        .into_iter()
        .map(|(id, name)| {
            json!({"value": id, "display": name,
                   "$ref": format!("{}/scim/v2/{}/Groups/{id}", state.public_url, user.idp_id)})
        })
        .collect())
}

async fn load(
    state: &AppState,
    caller: &ScimCaller,
    id: &str,
) -> Result<ScimUserRecord, ScimError> {
    state
        .store
        .find_scim_user(&caller.idp.id, id)
        .await?
        .ok_or_else(|| ScimError::NotFound(format!("no User {id}")))
}

pub async fn create_user(
    State(state): State<AppState>,
    caller: ScimCaller,
    ScimJson(body): ScimJson<Value>,
) -> Result<Response, ScimError> {
    let valid = validate(body)?;
    let now = Timestamp::now();
    let user = ScimUserRecord {
        id: uuid::Uuid::new_v4().to_string(),
        idp_id: caller.idp.id.clone(),
        account_id: caller.idp.account_id.clone(),
        link_email: link_email(&valid.resource, &valid.user_name),
        user_name: valid.user_name,
        external_id: valid.external_id,
        active: valid.active,
        resource: Value::Object(valid.resource),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    state.store.create_scim_user(&user).await?;
    Ok(scim_json(
        StatusCode::CREATED,
        representation(&state, &user, Vec::new()),
    ))
}

pub async fn get_user(
    State(state): State<AppState>,
    caller: ScimCaller,
    Path((_, id)): Path<(String, String)>,
    Query(projection): Query<Projection>,
) -> Result<Response, ScimError> {
    let user = load(&state, &caller, &id).await?;
    let groups = groups_of(&state, &user).await?;
    Ok(scim_json(
        StatusCode::OK,
        projection.apply(representation(&state, &user, groups)),
    ))
}

/// Saves a changed user and applies what the change means for Access.
async fn save(
    state: &AppState,
    caller: &ScimCaller,
    before: &ScimUserRecord,
    resource: Map<String, Value>,
) -> Result<Response, ScimError> {
    let valid = validate(Value::Object(resource))?;
    let user = ScimUserRecord {
        link_email: link_email(&valid.resource, &valid.user_name),
        user_name: valid.user_name,
        external_id: valid.external_id,
        active: valid.active,
        resource: Value::Object(valid.resource),
        version: before.version + 1,
        updated_at: Timestamp::now(),
        ..before.clone()
    };
    if !state.store.replace_scim_user(&user).await? {
        return Err(ScimError::NotFound(format!("no User {}", before.id)));
    }
    if before.active && !user.active {
        deprovision(state, caller, &user).await?;
    }
    follow_identity_change(state, caller, before, &user).await?;
    let groups = groups_of(state, &user).await?;
    Ok(scim_json(
        StatusCode::OK,
        representation(state, &user, groups),
    ))
}

pub async fn replace_user(
    State(state): State<AppState>,
    caller: ScimCaller,
    Path((_, id)): Path<(String, String)>,
    ScimJson(body): ScimJson<Value>,
) -> Result<Response, ScimError> {
    let before = load(&state, &caller, &id).await?;
    if let Some(Value::String(sent)) = get_ci(&body, "id")
        && *sent != before.id
    {
        return Err(ScimError::mutability("id cannot be changed"));
    }
    let Value::Object(resource) = body else {
        return Err(ScimError::invalid_syntax("a User must be a JSON object"));
    };
    save(&state, &caller, &before, resource).await
}

pub async fn patch_user(
    State(state): State<AppState>,
    caller: ScimCaller,
    Path((_, id)): Path<(String, String)>,
    ScimJson(request): ScimJson<PatchRequest>,
) -> Result<Response, ScimError> {
    let before = load(&state, &caller, &id).await?;
    let resource = Value::Object(schema::USER.shown(&before.resource));
    let resource = patch::apply_off_workers(resource, request, &schema::USER).await?;
    let Value::Object(resource) = resource else {
        return Err(ScimError::invalid_value(
            "the patched User is not an object",
        ));
    };
    save(&state, &caller, &before, resource).await
}

pub async fn delete_user(
    State(state): State<AppState>,
    caller: ScimCaller,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ScimError> {
    let user = load(&state, &caller, &id).await?;
    deprovision(&state, &caller, &user).await?;
    if !state
        .store
        .delete_scim_user(&caller.idp.id, &id, Timestamp::now())
        .await?
    {
        return Err(ScimError::NotFound(format!("no User {id}")));
    }
    let mut response = axum::response::IntoResponse::into_response(StatusCode::NO_CONTENT);
    response
        .headers_mut()
        .remove(axum::http::header::CONTENT_TYPE);
    Ok(response)
}
