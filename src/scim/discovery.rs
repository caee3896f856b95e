//! The discovery endpoints (RFC 7644 §4): what this service supports, told truthfully.

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};

use super::auth::ScimCaller;
use super::error::ScimError;
use super::{GROUP_SCHEMA, USER_SCHEMA, list_response, schema, scim_json};
use crate::app::AppState;

fn base(state: &AppState, caller: &ScimCaller) -> String {
    format!("{}/scim/v2/{}", state.public_url, caller.idp.id)
}

pub async fn service_provider_config(
    State(state): State<AppState>,
    caller: ScimCaller,
) -> Response {
    scim_json(
        axum::http::StatusCode::OK,
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "https://developers.cloudflare.com/cloudflare-one/identity/users/scim/",
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": super::MAX_COUNT},
            "changePassword": {"supported": false},
            "sort": {"supported": true},
            "etag": {"supported": false},
            "authenticationSchemes": [{
                "type": "oauthbearertoken", "name": "Bearer token",
                "description": "The SCIM secret of the identity provider, sent as Authorization: Bearer",
                "primary": true
            }],
            "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{}/ServiceProviderConfig", base(&state, &caller))}
        }),
    )
}

fn resource_types(state: &AppState, caller: &ScimCaller) -> Vec<Value> {
    [("User", "/Users", "User account", USER_SCHEMA), ("Group", "/Groups", "Group", GROUP_SCHEMA)]
        .into_iter()
        .map(|(name, endpoint, description, schema)| {
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
                "id": name, "name": name, "endpoint": endpoint, "description": description,
                "schema": schema, "schemaExtensions": [],
                "meta": {"resourceType": "ResourceType", "location": format!("{}/ResourceTypes/{name}", base(state, caller))}
            })
        })
        .collect()
}

pub async fn list_resource_types(State(state): State<AppState>, caller: ScimCaller) -> Response {
    let all = resource_types(&state, &caller);
    let total = all.len() as u64;
    list_response(all, total, 1)
}

pub async fn get_resource_type(
    State(state): State<AppState>,
    caller: ScimCaller,
    Path((_, name)): Path<(String, String)>,
) -> Result<Response, ScimError> {
    resource_types(&state, &caller)
        .into_iter()
        .find(|t| t["id"] == name.as_str())
        .map(|t| scim_json(axum::http::StatusCode::OK, t))
        .ok_or_else(|| ScimError::NotFound(format!("no resource type {name}")))
}

fn schemas(state: &AppState, caller: &ScimCaller) -> Vec<Value> {
    [&schema::USER, &schema::GROUP]
        .into_iter()
        .map(|s| s.to_json(format!("{}/Schemas/{}", base(state, caller), s.id)))
        .collect()
}

pub async fn list_schemas(State(state): State<AppState>, caller: ScimCaller) -> Response {
    let all = schemas(&state, &caller);
    let total = all.len() as u64;
    list_response(all, total, 1)
}

pub async fn get_schema(
    State(state): State<AppState>,
    caller: ScimCaller,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ScimError> {
    schemas(&state, &caller)
        .into_iter()
        .find(|s| s["id"] == id.as_str())
        .map(|s| scim_json(axum::http::StatusCode::OK, s))
        .ok_or_else(|| ScimError::NotFound(format!("no schema {id}")))
}
