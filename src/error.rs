//! The one error type of the v4 API and its single mapping to the Cloudflare
//! envelope. Every numeric code accessd sends is in [`ApiError::parts`]; the
//! table is repeated for readers in `docs/errors.md`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

#[derive(Debug, Serialize)]
pub struct ErrorItem {
    pub code: u32,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<ErrorSource>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub error_chain: Vec<ErrorItem>,
}

#[derive(Debug, Serialize)]
pub struct ErrorSource {
    pub pointer: String,
}

impl ErrorItem {
    fn new(code: u32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            source: None,
            error_chain: Vec::new(),
        }
    }

    fn at(mut self, pointer: Option<&str>) -> Self {
        self.source = pointer.map(|p| ErrorSource {
            pointer: p.to_string(),
        });
        self
    }

    fn chained(mut self, chain: Vec<ErrorItem>) -> Self {
        self.error_chain = chain;
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no route for {path}")]
    RouteNotFound { path: String },
    #[error("malformed identifier in {path}")]
    InvalidIdentifier { path: String },
    #[error("method {method} not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("no credentials")]
    MissingCredentials,
    #[error("malformed Authorization header")]
    MalformedAuthorization,
    #[error("malformed X-Auth headers")]
    MalformedAuthKey { key: bool, email: bool },
    #[error("unknown global API key")]
    UnknownAuthKey,
    #[error("invalid API token")]
    InvalidToken,
    #[error("not permitted")]
    Forbidden,
    #[error("account-owned token used to list accounts")]
    AccountTokenListsAccounts,
    #[error("malformed JSON body: {message}")]
    MalformedJson {
        message: String,
        pointer: Option<String>,
    },
    #[error("invalid request: {message}")]
    Invalid {
        family: Family,
        message: String,
        pointer: Option<String>,
    },
    #[error("body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{message}")]
    NotFound { code: u32, message: String },
    #[error("{message}")]
    Conflict { code: u32, message: String },
    #[error("{message}")]
    TooManyRequests {
        retry_after_seconds: u64,
        message: String,
    },
    /// The database is busy or unreachable for a moment: retrying helps.
    #[error("database temporarily unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Seconds a client is asked to wait before retrying after a 503.
const UNAVAILABLE_RETRY_SECONDS: u64 = 1;

/// Which part of the API answers: Access endpoints word their validation
/// errors the way the Access service does (`access.api.error.…`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Family {
    #[default]
    Core,
    Access,
}

impl ApiError {
    /// A body field or query parameter that fails validation. `pointer` is a
    /// JSON Pointer into the body (`/policies/0/effect`), or `None` for a query parameter.
    pub fn invalid(pointer: Option<&str>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            family: Family::Core,
            message: message.into(),
            pointer: pointer.map(str::to_string),
        }
    }

    /// The same validation error as the Access service words it.
    pub fn in_family(self, family: Family) -> Self {
        match self {
            ApiError::Invalid {
                message, pointer, ..
            } => ApiError::Invalid {
                family,
                message,
                pointer,
            },
            other => other,
        }
    }

    /// An Access object that does not exist (or is not visible to the caller).
    pub fn access_not_found(what: &str) -> Self {
        Self::not_found(12130, format!("access.api.error.not_found: {what}"))
    }

    pub fn field(pointer: &str, message: impl Into<String>) -> Self {
        Self::invalid(Some(pointer), message)
    }

    pub fn not_found(code: u32, message: impl Into<String>) -> Self {
        ApiError::NotFound {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: u32, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            message: message.into(),
        }
    }

    /// The status and the `errors` array: the one table of codes.
    fn parts(&self) -> (StatusCode, Vec<ErrorItem>) {
        let route = |path: &str| {
            vec![
                ErrorItem::new(
                    7003,
                    format!(
                        "Could not route to {path}, perhaps your object identifier is invalid?"
                    ),
                ),
                ErrorItem::new(7000, "No route for that URI"),
            ]
        };
        match self {
            ApiError::RouteNotFound { path } => (StatusCode::NOT_FOUND, route(path)),
            ApiError::InvalidIdentifier { path } => (StatusCode::BAD_REQUEST, route(path)),
            ApiError::MethodNotAllowed { method, path } => (
                StatusCode::METHOD_NOT_ALLOWED,
                vec![ErrorItem::new(
                    7001,
                    format!("Method {method} not allowed for {path}"),
                )],
            ),
            ApiError::MissingCredentials => (
                StatusCode::BAD_REQUEST,
                vec![ErrorItem::new(
                    9106,
                    "Missing X-Auth-Key, X-Auth-Email or Authorization headers",
                )],
            ),
            ApiError::MalformedAuthorization => (
                StatusCode::BAD_REQUEST,
                vec![
                    ErrorItem::new(6003, "Invalid request headers").chained(vec![ErrorItem::new(
                        6111,
                        "Invalid format for Authorization header",
                    )]),
                ],
            ),
            ApiError::MalformedAuthKey { key, email } => {
                let mut chain = Vec::new();
                if *email {
                    chain.push(ErrorItem::new(
                        6102,
                        "Invalid format for X-Auth-Email header",
                    ));
                }
                if *key {
                    chain.push(ErrorItem::new(6103, "Invalid format for X-Auth-Key header"));
                }
                (
                    StatusCode::BAD_REQUEST,
                    vec![ErrorItem::new(6003, "Invalid request headers").chained(chain)],
                )
            }
            ApiError::UnknownAuthKey => (
                StatusCode::FORBIDDEN,
                vec![ErrorItem::new(9103, "Unknown X-Auth-Key or X-Auth-Email")],
            ),
            ApiError::InvalidToken => (
                StatusCode::UNAUTHORIZED,
                vec![ErrorItem::new(1000, "Invalid API Token")],
            ),
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                vec![ErrorItem::new(10000, "Authentication error")],
            ),
            ApiError::AccountTokenListsAccounts => (
                StatusCode::BAD_REQUEST,
                vec![ErrorItem::new(
                    1001,
                    "List accounts endpoint does not support account owned tokens.",
                )],
            ),
            ApiError::MalformedJson { message, pointer } => (
                StatusCode::BAD_REQUEST,
                vec![
                    ErrorItem::new(6007, format!("Malformed JSON in request body: {message}"))
                        .at(pointer.as_deref()),
                ],
            ),
            ApiError::Invalid {
                family,
                message,
                pointer,
            } => {
                let item = match (family, pointer) {
                    (Family::Core, _) => ErrorItem::new(1004, message.clone()),
                    (Family::Access, None) => ErrorItem::new(
                        12091,
                        format!("access.api.error.invalid_url_parameter_value: {message}"),
                    ),
                    (Family::Access, Some(_)) => ErrorItem::new(
                        12002,
                        format!("access.api.error.invalid_request: {message}"),
                    ),
                };
                (StatusCode::BAD_REQUEST, vec![item.at(pointer.as_deref())])
            }
            ApiError::PayloadTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                vec![ErrorItem::new(
                    1008,
                    format!("Request body too large: send at most {limit} bytes"),
                )],
            ),
            ApiError::NotFound { code, message } => (
                StatusCode::NOT_FOUND,
                vec![ErrorItem::new(*code, message.clone())],
            ),
            ApiError::Conflict { code, message } => (
                StatusCode::CONFLICT,
                vec![ErrorItem::new(*code, message.clone())],
            ),
            ApiError::TooManyRequests { message, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                vec![ErrorItem::new(971, message.clone())],
            ),
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                vec![ErrorItem::new(
                    10503,
                    "Service temporarily unavailable; please retry later",
                )],
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                vec![ErrorItem::new(
                    10001,
                    "Internal server error; please retry later",
                )],
            ),
        }
    }
}

#[derive(Serialize)]
struct FailureBody {
    success: bool,
    errors: Vec<ErrorItem>,
    messages: [(); 0],
    result: Option<()>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "request failed");
        }
        if let ApiError::Unavailable(cause) = &self {
            tracing::warn!(%cause, "database busy or unreachable; asked the client to retry");
        }
        let retry_after = match &self {
            ApiError::TooManyRequests {
                retry_after_seconds,
                ..
            } => Some(*retry_after_seconds),
            ApiError::Unavailable(_) => Some(UNAVAILABLE_RETRY_SECONDS),
            _ => None,
        };
        let (status, errors) = self.parts();
        let unread_body = matches!(self, ApiError::PayloadTooLarge { .. });
        let body = FailureBody {
            success: false,
            errors,
            messages: [],
            result: None,
        };
        let mut response = (status, axum::Json(body)).into_response();
        // A conflict or a bad request will not go away by itself: tell the SDKs not to retry.
        if status.is_client_error() {
            response
                .headers_mut()
                .insert("x-should-retry", HeaderValue::from_static("false"));
        }
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert("x-should-retry", HeaderValue::from_static("true"));
        }
        if unread_body {
            // The rest of the body was never read, so this connection cannot carry another request.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(what) => ApiError::conflict(1009, what),
            StoreError::UnknownReference(what) => ApiError::invalid(None, what),
            other if other.is_transient() => ApiError::Unavailable(other.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}
