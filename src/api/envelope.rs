//! The success half of the v4 envelope. Every handler answers through
//! [`Success`], so all successful bodies look alike.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::Page;

#[derive(Serialize)]
pub struct Message {
    pub code: u32,
    pub message: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

#[derive(Serialize)]
pub struct ResultInfo {
    pub page: u32,
    pub per_page: u32,
    pub count: usize,
    pub total_count: u64,
    pub total_pages: u64,
}

#[derive(Serialize)]
struct Body<T> {
    success: bool,
    errors: [(); 0],
    messages: Vec<Message>,
    result: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    result_info: Option<ResultInfo>,
}

pub struct Success<T> {
    status: StatusCode,
    result: T,
    result_info: Option<ResultInfo>,
    messages: Vec<Message>,
}

impl<T: Serialize> Success<T> {
    pub fn ok(result: T) -> Self {
        Self {
            status: StatusCode::OK,
            result,
            result_info: None,
            messages: Vec::new(),
        }
    }

    pub fn created(result: T) -> Self {
        Self {
            status: StatusCode::CREATED,
            ..Self::ok(result)
        }
    }

    pub fn accepted(result: T) -> Self {
        Self {
            status: StatusCode::ACCEPTED,
            ..Self::ok(result)
        }
    }

    pub fn with_message(mut self, code: u32, message: &str) -> Self {
        self.messages.push(Message {
            code,
            message: message.to_string(),
            kind: None,
        });
        self
    }
}

impl<T: Serialize> Success<Vec<T>> {
    /// A page of a paginated collection, with its `result_info`.
    pub fn page(page: Page<T>) -> Self {
        let info = ResultInfo {
            page: page.request.page,
            per_page: page.request.per_page,
            count: page.items.len(),
            total_count: page.total_count,
            total_pages: page.total_pages(),
        };
        Self {
            result_info: Some(info),
            ..Self::ok(page.items)
        }
    }

    /// A whole collection returned at once (the SDKs' `SinglePage`): one
    /// page holding everything, or no page at all when there is nothing,
    /// as a paginated listing says of an empty collection.
    pub fn all(items: Vec<T>) -> Self {
        let count = items.len();
        let info = ResultInfo {
            page: 1,
            per_page: u32::try_from(count).unwrap_or(u32::MAX),
            count,
            total_count: count as u64,
            total_pages: u64::from(count > 0),
        };
        Self {
            result_info: Some(info),
            ..Self::ok(items)
        }
    }
}

impl<T: Serialize> IntoResponse for Success<T> {
    fn into_response(self) -> Response {
        let body = Body {
            success: true,
            errors: [],
            messages: self.messages,
            result: self.result,
            result_info: self.result_info,
        };
        (self.status, axum::Json(body)).into_response()
    }
}
