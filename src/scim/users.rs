//! `/Users`: the provider's users, and what their changes do to Access
//! (`linking`). Listings are read by `listing`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use serde_json::{Map, Value};

use super::auth::ScimCaller;
use super::error::ScimError;
use super::filter::get_ci;
use super::linking::{deprovision, follow_identity_change, link_email};
use super::listing::Source;
use super::patch::{self, PatchRequest};
use super::projection::Projection;
use super::query::{ListQuery, ListRequest, SearchRequest};
use super::{ScimJson, USER_SCHEMA, list_response, outcome, resources, schema, scim_json, search};
use crate::app::AppState;
use crate::domain::Timestamp;
use crate::listing::{self, ListingKey};
use crate::store::scim::ScimUserRecord;
use crate::store::scim_listing::ScimKind;
use crate::store::snapshot::ListingScope;

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

/// `GET /Users`. Pages after the first read the users as they were at the
/// first one, whichever process serves them.
pub async fn list_users(
    State(state): State<AppState>,
    caller: ScimCaller,
    uri: axum::http::Uri,
    Query(query): Query<ListQuery>,
) -> Result<Response, ScimError> {
    let key = ListingKey::new(
        format!("scim:{}", caller.idp.id),
        uri.path(),
        uri.query(),
        "startIndex",
    );
    let reading = listing::open(
        &state.store,
        key,
        query.start()? <= 1,
        ListingScope::ScimUsers,
        caller.idp.id.as_str(),
    )
    .await?;
    let request = ListRequest::try_from(query)?;
    let source = Source {
        state: &state,
        idp: &caller.idp.id,
        snapshot: &reading.snapshot,
    };
    let listed = super::listing::list(&source, &[ScimKind::Users], &request).await?;
    reading
        .keep_for_later_pages(&state.store, outcome(&request, &listed))
        .await?;
    Ok(list_response(listed.resources, listed.total, request.start))
}

/// `POST /Users/.search`: the same listing, asked in a body. It reads the
/// present state; pinned pages are for `GET` listings.
pub async fn search_users(
    State(state): State<AppState>,
    caller: ScimCaller,
    ScimJson(body): ScimJson<SearchRequest>,
) -> Result<Response, ScimError> {
    search(&state, &caller, &[ScimKind::Users], body).await
}

async fn groups_of(state: &AppState, user: &ScimUserRecord) -> Result<Vec<Value>, ScimError> {
    let base = resources::base_of(&state.public_url, &user.idp_id);
    Ok(state
        .store
        .scim_groups_of_users(std::slice::from_ref(&user.id))
        .await?
        .into_iter()
        .map(|(_, id, name)| resources::group_of_user(&base, &id, &name))
        .collect())
}

fn representation(state: &AppState, user: &ScimUserRecord, groups: Vec<Value>) -> Value {
    resources::user(
        &resources::base_of(&state.public_url, &user.idp_id),
        user,
        groups,
    )
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
