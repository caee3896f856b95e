//! Service tokens presented with a request: `CF-Access-Client-Id` and
//! `CF-Access-Client-Secret`, or one JSON header an application names.

use axum::http::HeaderMap;

use crate::domain::service_token::{self, Credentials, Refusal, ServiceToken};
use crate::domain::{AccountId, Timestamp};
use crate::gate::Gate;
use crate::store::{Store, StoreResult};

/// The credentials `headers` present (see
/// [`service_token::read_credentials`]); `single_header` is the header an
/// application reads them from as JSON, if it names one.
pub fn presented_credentials(
    headers: &HeaderMap,
    single_header: Option<&str>,
) -> Result<Option<Credentials>, Refusal> {
    service_token::read_credentials(
        |name| headers.get_all(name).iter().map(|v| v.as_bytes()).collect(),
        single_header,
    )
}

/// The service token a request presents for `account`: `Ok(None)` when it
/// presents none, the refusal when it presents one that does not open.
/// Tokens are read through the gate; a use is written back at most once
/// per resolution interval.
pub async fn authenticate_request(
    gate: &Gate,
    store: &Store,
    account: &AccountId,
    headers: &HeaderMap,
    single_header: Option<&str>,
    now: Timestamp,
) -> StoreResult<Result<Option<ServiceToken>, Refusal>> {
    let presented = match presented_credentials(headers, single_header) {
        Ok(Some(presented)) => presented,
        Ok(None) => return Ok(Ok(None)),
        Err(refusal) => return Ok(Err(refusal)),
    };
    let Some(stored) = gate
        .service_token(store, account, &presented.client_id)
        .await?
    else {
        return Ok(Err(Refusal::UnknownClientId));
    };
    if let Err(refusal) = stored.verify(&presented, now) {
        return Ok(Err(refusal));
    }
    gate.service_token_seen(store, &stored, now).await?;
    Ok(Ok(Some(stored.token.clone())))
}
