//! SCIM 2.0 (RFC 7643, RFC 7644): the service each identity provider pushes
//! its users to, at `/scim/v2/{idp_id}`. Errors take the RFC 7644 shape
//! (`error.rs`), never the v4 envelope.

mod auth;
mod discovery;
pub mod error;
pub mod filter;
mod groups;
mod linking;
mod listing;
pub mod patch;
mod projection;
mod query;
mod resources;
pub mod schema;
mod users;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::listing::PageOutcome;
use crate::store::scim_listing::ScimKind;
use crate::store::snapshot::ListingSnapshot;
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
    State(state): State<AppState>,
    caller: auth::ScimCaller,
    ScimJson(body): ScimJson<query::SearchRequest>,
) -> Result<Response, ScimError> {
    search(&state, &caller, &[ScimKind::Users, ScimKind::Groups], body).await
}

/// A `.search` of `kinds`: it reads the present state (pinned pages are for
/// `GET` listings).
async fn search(
    state: &AppState,
    caller: &auth::ScimCaller,
    kinds: &[ScimKind],
    body: query::SearchRequest,
) -> Result<Response, ScimError> {
    let request = query::ListRequest::try_from(query::ListQuery::from(body))?;
    let present = ListingSnapshot::present();
    let source = listing::Source {
        state,
        idp: &caller.idp.id,
        snapshot: &present,
    };
    let listed = listing::list(&source, kinds, &request).await?;
    Ok(list_response(listed.resources, listed.total, request.start))
}

/// Where a listed page sits, for deciding whether to keep its snapshot.
fn outcome(request: &query::ListRequest, listed: &listing::Listed) -> PageOutcome {
    PageOutcome {
        before: request.start - 1,
        shown: listed.resources.len() as u64,
        asked: request.count,
        total: listed.total,
    }
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

pub fn list_response(resources: Vec<Value>, total: u64, start_index: u64) -> Response {
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
