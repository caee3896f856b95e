//! Application state, the router and the middleware around it.

use std::any::Any;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::api::extract::BODY_LIMIT;
use crate::config::{CodeLimits, Retention};
use crate::error::ApiError;
use crate::gate::Gate;
use crate::mail::Mailer;
use crate::store::Store;
use crate::{api, login, scim};

/// What every handler reaches. Cloned for each request and layer, so it
/// is one shared allocation: a clone costs one reference count.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl From<Shared> for AppState {
    fn from(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

#[derive(Debug)]
pub struct Shared {
    pub store: Store,
    /// Where users and identity providers reach this server, without a trailing slash.
    pub public_url: Arc<str>,
    pub retention: Retention,
    pub mailer: Arc<Mailer>,
    /// The header a trusted proxy puts the client's country in.
    pub country_header: Option<Arc<str>>,
    pub code_limits: CodeLimits,
    /// Peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    /// What access decisions read, held in memory.
    pub gate: Arc<Gate>,
}

impl Shared {
    pub fn new(store: Store, public_url: &str, retention: Retention, mailer: Mailer) -> Self {
        Self {
            store,
            public_url: Arc::from(public_url),
            retention,
            mailer: Arc::new(mailer),
            country_header: None,
            code_limits: CodeLimits::default(),
            trusted_proxies: Arc::from(Vec::new()),
            gate: Arc::default(),
        }
    }
}

/// The whole HTTP surface: the v4 API under `/client/v4`, and v4-shaped
/// errors for everything that matches nothing.
pub fn router(state: AppState) -> Router {
    Router::new()
        .nest("/client/v4", api::router())
        .merge(login::router())
        .merge(scim::router())
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            settle_decisions,
        ))
        .layer(middleware::from_fn(request_span))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

async fn route_not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound {
        path: uri.path().to_string(),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}

/// One span per request, named by the route pattern rather than the raw
/// path so ids and secrets in paths stay out of the logs.
async fn request_span(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str)
        .to_string();
    let span = tracing::info_span!("request", method = %request.method(), route = %route);
    async move {
        let response = next.run(request).await;
        tracing::debug!(status = response.status().as_u16(), "answered");
        response
    }
    .instrument(span)
    .await
}

/// After a request that may have changed what access decisions read, the
/// decision state is brought up to date before the answer goes out, so the
/// client's next request is decided on what it just wrote.
async fn settle_decisions(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    // Forward-auth answers for the proxied request's method (nginx asks
    // with it), but only ever reads what decisions hold.
    let reads_only = (matches!(*request.method(), Method::GET | Method::HEAD)
        && !path.ends_with("/logout"))
        || path == "/cdn-cgi/access/forward-auth";
    let response = next.run(request).await;
    if !reads_only && let Err(err) = state.gate.sync(&state.store).await {
        // The poll and the staleness bound cover it.
        tracing::warn!(%err, "cannot read the decision state's version after a write");
    }
    response
}

fn panic_response(cause: Box<dyn Any + Send + 'static>) -> Response {
    let detail = cause
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| cause.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".to_string());
    ApiError::Internal(format!("handler panicked: {detail}")).into_response()
}
