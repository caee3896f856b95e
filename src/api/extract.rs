//! Extractors that reject in the v4 envelope: bad JSON, a bad query string or
//! an oversized body all come out as [`ApiError`] naming what to fix.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Family};

/// Largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 1024 * 1024;

pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit: BODY_LIMIT }
            } else {
                ApiError::MalformedJson {
                    message: rejection.body_text(),
                    pointer: None,
                }
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::MalformedJson {
                message: "the body is empty; send a JSON object".to_string(),
                pointer: None,
            });
        }
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut deserializer).map_err(json_error)?;
        deserializer.end().map_err(|err| ApiError::MalformedJson {
            message: err.to_string(),
            pointer: None,
        })?;
        Ok(Self(value))
    }
}

fn json_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let pointer = json_pointer(err.path());
    let path = err.path().to_string();
    let inner = err.into_inner();
    match inner.classify() {
        serde_json::error::Category::Data => {
            let message = if path == "." {
                strip_position(&inner)
            } else {
                format!("{path}: {}", strip_position(&inner))
            };
            ApiError::field(&pointer, message)
        }
        _ => ApiError::MalformedJson {
            message: inner.to_string(),
            pointer: None,
        },
    }
}

/// serde_json appends "at line 1 column 42"; the pointer says where more usefully.
fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        pointer.push('/');
        match segment {
            Segment::Seq { index } => pointer.push_str(&index.to_string()),
            Segment::Map { key } => pointer.push_str(&key.replace('~', "~0").replace('/', "~1")),
            Segment::Enum { variant } => pointer.push_str(variant),
            Segment::Unknown => pointer.push('?'),
        }
    }
    pointer
}

/// Query parameters; `+` and `%20` both decode to a space.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Self)
            .map_err(|err| {
                let name = err.path().to_string();
                ApiError::invalid(
                    None,
                    format!("query parameter `{name}`: {}", err.into_inner()),
                )
            })
    }
}

/// `page` and `per_page`, checked against one endpoint's limits.
#[derive(Debug, Default, serde::Deserialize)]
pub struct PageParams {
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

pub struct PageLimits {
    pub min_per_page: u32,
    pub max_per_page: u32,
    pub default_per_page: u32,
}

impl PageParams {
    pub fn resolve(&self, limits: &PageLimits) -> Result<crate::store::PageRequest, ApiError> {
        let page = match self.page {
            None => 1,
            Some(p) if p >= 1 && p <= i64::from(u32::MAX) => p as u32,
            Some(p) => {
                return Err(ApiError::invalid(
                    None,
                    format!("query parameter `page` must be 1 or more, got {p}"),
                ));
            }
        };
        let per_page = match self.per_page {
            None => limits.default_per_page,
            Some(n)
                if n >= i64::from(limits.min_per_page) && n <= i64::from(limits.max_per_page) =>
            {
                n as u32
            }
            Some(n) => {
                return Err(ApiError::invalid(
                    None,
                    format!(
                        "query parameter `per_page` must be between {} and {}, got {n}",
                        limits.min_per_page, limits.max_per_page
                    ),
                ));
            }
        };
        Ok(crate::store::PageRequest { page, per_page })
    }
}

/// [`ApiJson`] for Access endpoints: validation errors in the Access wording.
pub struct AccessJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AccessJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        ApiJson::from_request(req, state)
            .await
            .map(|ApiJson(value)| Self(value))
            .map_err(|err| err.in_family(Family::Access))
    }
}

/// [`ApiQuery`] for Access endpoints: validation errors in the Access wording.
pub struct AccessQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for AccessQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        ApiQuery::from_request_parts(parts, state)
            .await
            .map(|ApiQuery(value)| Self(value))
            .map_err(|err| err.in_family(Family::Access))
    }
}
