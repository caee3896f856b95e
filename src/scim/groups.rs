//! `/Groups`: the provider's groups and their members. A change of members
//! writes only who joins and who leaves. Listings are read by `listing`.

use std::collections::HashSet;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::auth::ScimCaller;
use super::error::ScimError;
use super::filter::get_ci;
use super::listing::Source;
use super::patch::{self, PatchRequest};
use super::projection::Projection;
use super::query::{ListQuery, ListRequest, SearchRequest};
use super::schema;
use super::{GROUP_SCHEMA, ScimJson, list_response, resources, scim_json, search};
use crate::app::AppState;
use crate::domain::Timestamp;
use crate::store::scim_groups::{MemberChange, ScimGroupRecord};
use crate::store::scim_listing::ScimKind;
use crate::store::snapshot::ListingSnapshot;

struct ValidGroup {
    resource: Map<String, Value>,
    display_name: String,
    external_id: Option<String>,
    members: Vec<String>,
}

fn validate(input: Value) -> Result<ValidGroup, ScimError> {
    let Value::Object(mut resource) = input else {
        return Err(ScimError::invalid_syntax("a Group must be a JSON object"));
    };
    if let Some(schemas) = get_ci(&Value::Object(resource.clone()), "schemas")
        && !schemas
            .as_array()
            .is_some_and(|s| s.iter().any(|v| v == GROUP_SCHEMA))
    {
        return Err(ScimError::invalid_syntax(format!(
            "schemas must include {GROUP_SCHEMA}"
        )));
    }
    let members_key = resource
        .keys()
        .find(|k| k.eq_ignore_ascii_case("members"))
        .cloned();
    let mut members = Vec::new();
    if let Some(key) = members_key {
        match resource.remove(&key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                if items.len() > schema::MAX_MEMBERS {
                    return Err(ScimError::invalid_value(format!(
                        "a Group may have at most {} members",
                        schema::MAX_MEMBERS
                    )));
                }
                let mut seen = HashSet::new();
                for item in items {
                    let Some(Value::String(id)) = get_ci(&item, "value").cloned() else {
                        return Err(ScimError::invalid_value(
                            "each member needs a string value (the user's id)",
                        ));
                    };
                    if id.chars().nth(schema::MAX_STRING_CHARS).is_some() {
                        return Err(ScimError::invalid_value(format!(
                            "members.value is longer than {} characters",
                            schema::MAX_STRING_CHARS
                        )));
                    }
                    if seen.insert(id.clone()) {
                        members.push(id);
                    }
                }
            }
            Some(_) => return Err(ScimError::invalid_value("members must be a list")),
        }
    }
    let resource = schema::GROUP.accept(resource)?;
    let display_name = match resource.get("displayName") {
        Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
        _ => return Err(ScimError::invalid_value("displayName is required")),
    };
    let external_id = resource
        .get("externalId")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(ValidGroup {
        resource,
        display_name,
        external_id,
        members,
    })
}

fn representation(state: &AppState, group: &ScimGroupRecord) -> Value {
    resources::group(&resources::base_of(&state.public_url, &group.idp_id), group)
}

/// `POST /Groups/.search`.
pub async fn search_groups(
    State(state): State<AppState>,
    caller: ScimCaller,
    ScimJson(body): ScimJson<SearchRequest>,
) -> Result<Response, ScimError> {
    search(&state, &caller, &[ScimKind::Groups], body).await
}

/// `GET /Groups`. Groups are deleted outright, so every page reads the present.
pub async fn list_groups(
    State(state): State<AppState>,
    caller: ScimCaller,
    Query(query): Query<ListQuery>,
) -> Result<Response, ScimError> {
    let request = ListRequest::try_from(query)?;
    let present = ListingSnapshot::present();
    let source = Source {
        state: &state,
        idp: &caller.idp.id,
        snapshot: &present,
    };
    let listed = super::listing::list(&source, &[ScimKind::Groups], &request).await?;
    Ok(list_response(listed.resources, listed.total, request.start))
}

async fn load(
    state: &AppState,
    caller: &ScimCaller,
    id: &str,
) -> Result<ScimGroupRecord, ScimError> {
    state
        .store
        .find_scim_group(&caller.idp.id, id)
        .await?
        .ok_or_else(|| ScimError::NotFound(format!("no Group {id}")))
}

pub async fn create_group(
    State(state): State<AppState>,
    caller: ScimCaller,
    ScimJson(body): ScimJson<Value>,
) -> Result<Response, ScimError> {
    let valid = validate(body)?;
    let now = Timestamp::now();
    let group = ScimGroupRecord {
        id: uuid::Uuid::new_v4().to_string(),
        idp_id: caller.idp.id.clone(),
        account_id: caller.idp.account_id.clone(),
        display_name: valid.display_name,
        external_id: valid.external_id,
        resource: Value::Object(valid.resource),
        members: valid.members,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    state.store.create_scim_group(&group).await?;
    Ok(scim_json(
        StatusCode::CREATED,
        representation(&state, &group),
    ))
}

pub async fn get_group(
    State(state): State<AppState>,
    caller: ScimCaller,
    Path((_, id)): Path<(String, String)>,
    Query(projection): Query<Projection>,
) -> Result<Response, ScimError> {
    let group = load(&state, &caller, &id).await?;
    Ok(scim_json(
        StatusCode::OK,
        projection.apply(representation(&state, &group)),
    ))
}

async fn save(
    state: &AppState,
    before: &ScimGroupRecord,
    document: Value,
) -> Result<Response, ScimError> {
    let valid = validate(document)?;
    let group = ScimGroupRecord {
        display_name: valid.display_name,
        external_id: valid.external_id,
        resource: Value::Object(valid.resource),
        members: valid.members,
        version: before.version + 1,
        updated_at: Timestamp::now(),
        ..before.clone()
    };
    let change = MemberChange::between(&before.members, &group.members);
    if !state.store.update_scim_group(&group, &change).await? {
        return Err(ScimError::NotFound(format!("no Group {}", before.id)));
    }
    Ok(scim_json(StatusCode::OK, representation(state, &group)))
}

pub async fn replace_group(
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
    save(&state, &before, body).await
}

pub async fn patch_group(
    State(state): State<AppState>,
    caller: ScimCaller,
    Path((_, id)): Path<(String, String)>,
    ScimJson(request): ScimJson<PatchRequest>,
) -> Result<Response, ScimError> {
    let before = load(&state, &caller, &id).await?;
    let mut document = schema::GROUP.shown(&before.resource);
    let members: Vec<Value> = before.members.iter().map(|m| json!({"value": m})).collect();
    document.insert("members".into(), Value::Array(members));
    let document =
        patch::apply_off_workers(Value::Object(document), request, &schema::GROUP).await?;
    save(&state, &before, document).await
}

pub async fn delete_group(
    State(state): State<AppState>,
    caller: ScimCaller,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ScimError> {
    if !state.store.delete_scim_group(&caller.idp.id, &id).await? {
        return Err(ScimError::NotFound(format!("no Group {id}")));
    }
    Ok(axum::response::IntoResponse::into_response(
        StatusCode::NO_CONTENT,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group_of(members: usize) -> Value {
        let members: Vec<Value> = (0..members)
            .map(|i| json!({"value": format!("user-{i}")}))
            .collect();
        json!({"displayName": "G", "members": members})
    }

    #[test]
    fn members_are_capped_exactly() {
        let full = validate(group_of(schema::MAX_MEMBERS)).map(|g| g.members.len());
        assert!(matches!(full, Ok(n) if n == schema::MAX_MEMBERS));
        assert!(validate(group_of(schema::MAX_MEMBERS + 1)).is_err());
    }
}
