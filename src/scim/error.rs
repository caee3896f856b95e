//! The one mapping of SCIM failures to RFC 7644 §3.12 error bodies.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const SCIM_JSON: &str = "application/scim+json";

#[derive(Debug, thiserror::Error)]
pub enum ScimError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error("{detail}")]
    BadRequest {
        scim_type: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Uniqueness(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ScimError {
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        ScimError::BadRequest {
            scim_type: "invalidValue",
            detail: detail.into(),
        }
    }

    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        ScimError::BadRequest {
            scim_type: "invalidSyntax",
            detail: detail.into(),
        }
    }

    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        ScimError::BadRequest {
            scim_type: "invalidFilter",
            detail: detail.into(),
        }
    }

    pub fn invalid_path(detail: impl Into<String>) -> Self {
        ScimError::BadRequest {
            scim_type: "invalidPath",
            detail: detail.into(),
        }
    }

    pub fn no_target(detail: impl Into<String>) -> Self {
        ScimError::BadRequest {
            scim_type: "noTarget",
            detail: detail.into(),
        }
    }

    /// RFC 7644 §3.12: more results than the server will work through.
    pub fn too_many(detail: impl Into<String>) -> Self {
        ScimError::BadRequest {
            scim_type: "tooMany",
            detail: detail.into(),
        }
    }

    pub fn mutability(detail: impl Into<String>) -> Self {
        ScimError::BadRequest {
            scim_type: "mutability",
            detail: detail.into(),
        }
    }
}

impl From<StoreError> for ScimError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(what) => ScimError::Uniqueness(what),
            StoreError::UnknownReference(what) => ScimError::invalid_value(what),
            other => ScimError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let (status, scim_type, detail) = match &self {
            ScimError::Unauthorized(why) => (StatusCode::UNAUTHORIZED, None, why.to_string()),
            ScimError::NotFound(what) => (StatusCode::NOT_FOUND, None, what.clone()),
            ScimError::BadRequest { scim_type, detail } => {
                (StatusCode::BAD_REQUEST, Some(*scim_type), detail.clone())
            }
            ScimError::Uniqueness(what) => (StatusCode::CONFLICT, Some("uniqueness"), what.clone()),
            ScimError::Internal(cause) => {
                tracing::error!(%cause, "SCIM request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    None,
                    "internal error; please retry later".to_string(),
                )
            }
        };
        let mut body = json!({ "schemas": [ERROR_SCHEMA], "status": status.as_u16().to_string(), "detail": detail });
        if let Some(scim_type) = scim_type {
            body["scimType"] = json!(scim_type);
        }
        let mut response = (status, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
