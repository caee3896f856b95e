//! SCIM 2.0 (RFC 7643, RFC 7644): the service each identity provider pushes
//! its users to, at `/scim/v2/{idp_id}`. Errors take the RFC 7644 shape
//! (`error.rs`), never the v4 envelope.

mod auth;
mod discovery;
pub mod error;
pub mod filter;
mod groups;
mod linking;
pub mod patch;
mod projection;
pub mod schema;
mod users;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::app::AppState;
use error::{SCIM_JSON, ScimError};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The most resources one page returns.
pub const MAX_COUNT: usize = 1000;

pub fn router() -> Router<AppState> {
    let base = "/scim/v2/{idp_id}";
    Router::new()
        .route(
            &format!("{base}/ServiceProviderConfig"),
            get(discovery::service_provider_config),
        )
        .route(
            &format!("{base}/ResourceTypes"),
            get(discovery::list_resource_types),
        )
        .route(
            &format!("{base}/ResourceTypes/{{name}}"),
            get(discovery::get_resource_type),
        )
        .route(&format!("{base}/Schemas"), get(discovery::list_schemas))
        .route(
            &format!("{base}/Schemas/{{id}}"),
            get(discovery::get_schema),
        )
        .route(
            &format!("{base}/Users"),
            get(users::list_users).post(users::create_user),
        )
        .route(
            &format!("{base}/Users/{{id}}"),
            get(users::get_user)
                .put(users::replace_user)
                .patch(users::patch_user)
                .delete(users::delete_user),
        )
        .route(
            &format!("{base}/Groups"),
            get(groups::list_groups).post(groups::create_group),
        )
        .route(&format!("{base}/.search"), axum::routing::post(search_all))
        .route(
            &format!("{base}/Users/.search"),
            axum::routing::post(users::search_users),
        )
        .route(
            &format!("{base}/Groups/.search"),
            axum::routing::post(groups::search_groups),
        )
        .route(
            &format!("{base}/{{*rest}}"),
            axum::routing::any(unknown_endpoint),
        )
        .route(
            &format!("{base}/Groups/{{id}}"),
            get(groups::get_group)
                .put(groups::replace_group)
                .patch(groups::patch_group)
                .delete(groups::delete_group),
        )
}

/// `POST /.search` at the root: users and groups together.
async fn search_all(
    state: axum::extract::State<AppState>,
    caller: auth::ScimCaller,
    ScimJson(search): ScimJson<users::SearchRequest>,
) -> Result<Response, ScimError> {
    let mut all = users::all_users(&state, &caller).await?;
    all.extend(groups::all_groups(&state, &caller).await?);
    users::page_of(all, users::ListQuery::from(search)).await
}

/// Anything else under a provider's SCIM base answers with a SCIM 404.
async fn unknown_endpoint(uri: axum::http::Uri) -> ScimError {
    ScimError::NotFound(format!("no SCIM endpoint at {}", uri.path()))
}

pub fn scim_json(status: StatusCode, body: Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    response
}

pub fn list_response(resources: Vec<Value>, total: usize, start_index: usize) -> Response {
    scim_json(
        StatusCode::OK,
        json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": total,
            "startIndex": start_index,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    )
}

/// A JSON body (`application/scim+json` or `application/json`); anything
/// else is a SCIM `invalidSyntax` error.
pub struct ScimJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ScimJson<T> {
    type Rejection = ScimError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ScimError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            ScimError::invalid_syntax(format!("could not read the body: {}", e.body_text()))
        })?;
        serde_json::from_slice(&bytes).map(ScimJson).map_err(|e| {
            ScimError::invalid_syntax(format!("the body is not valid JSON for this request: {e}"))
        })
    }
}
