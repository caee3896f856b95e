//! After the identity is proven: policy evaluation, the records a login
//! leaves (user, seat, session, identity, or a failed login), and the
//! application token handed to the application's host.

use std::collections::BTreeMap;
use std::net::IpAddr;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::decide::{Outcome, Subject, decide};
use super::pages::error_page;
use super::{LoginError, scheme};
use crate::app::AppState;
use crate::auth::app_token::{self, AppClaims};
use crate::domain::activity::{
    FailedLogin, FailedLoginMetadata, Geo, Identity, IdpRef, Session, SessionApp, SessionNonce,
    new_ray_id,
};
use crate::domain::app::AccessApp;
use crate::domain::policy::AccessPolicy;
use crate::domain::user::{AccessUser, Email};
use crate::domain::{Timestamp, duration};
use crate::store::logins::OtpChallenge;

pub struct Failure<'a> {
    pub app: &'a AccessApp,
    pub email: &'a str,
    pub reason: &'static str,
    pub ip: IpAddr,
}

/// Writes a failed login for the user with this e-mail. An unknown e-mail
/// is only logged, unless `create_user` (the e-mail was proven, as when a
/// policy denies a verified user): then the user is created on first sight.
pub async fn record_failure(
    state: &AppState,
    failure: Failure<'_>,
    create_user: bool,
) -> Result<(), LoginError> {
    let app = failure.app;
    let now = Timestamp::now();
    let user = match state
        .store
        .find_user_by_email(&app.account_id, failure.email)
        .await?
    {
        Some(user) => user,
        None if create_user => {
            let email = Email::from_stored(failure.email.to_string());
            let user = AccessUser::new(app.account_id.clone(), email, None, now);
            state.store.create_user(&user).await?;
            user
        }
        None => {
            tracing::info!(reason = failure.reason, ip = %failure.ip, "failed sign-in for an unknown e-mail");
            return Ok(());
        }
    };
    let keep = i64::try_from(state.retention.failed_login_retention.as_secs()).unwrap_or(i64::MAX);
    let record = FailedLogin {
        account_id: app.account_id.clone(),
        user_id: user.id.clone(),
        occurred_at: now,
        expires_at: now.plus_seconds(keep),
        metadata: FailedLoginMetadata {
            app_name: app.name.clone(),
            aud: app.aud.clone(),
            datetime: now.to_millis_string(),
            ray_id: new_ray_id(),
            user_email: user.email.as_str().to_string(),
            user_uuid: user.id.to_string(),
            reason: failure.reason.to_string(),
        },
    };
    state.store.record_failed_login(&record).await?;
    Ok(())
}

/// Seconds an application token lasts: the policy's session duration, else
/// the application's.
pub fn app_token_seconds(app: &AccessApp, policy: &AccessPolicy) -> i64 {
    let chosen = policy
        .session_duration
        .as_deref()
        .unwrap_or(&app.session_duration);
    duration::parse(chosen).map_or(24 * 3600, |d| {
        i64::try_from(d.as_secs()).unwrap_or(24 * 3600).max(1)
    })
}

/// Who asks to use an application, as the policies see them.
pub struct Asker<'a> {
    pub email: &'a str,
    pub ip: IpAddr,
    pub country: Option<String>,
    pub idp_id: &'a str,
}

/// The policy that lets `asker` use `app`, or the deny page, after
/// recording the refusal as a failed login.
pub async fn admit(
    state: &AppState,
    app: &AccessApp,
    asker: &Asker<'_>,
) -> Result<AccessPolicy, LoginError> {
    let subject = Subject {
        email: Some(asker.email.to_string()),
        idp_id: Some(asker.idp_id.to_string()),
        service_token: None,
        country: asker.country.clone(),
    };
    match decide(state, app, &subject, asker.ip).await? {
        Outcome::Admitted(policy) => Ok(policy),
        Outcome::Refused(reason) => {
            record_failure(
                state,
                Failure {
                    app,
                    email: asker.email,
                    reason,
                    ip: asker.ip,
                },
                true,
            )
            .await?;
            let message =
                app.settings.custom_deny_message.clone().unwrap_or_else(|| {
                    format!("{} is not allowed to use {}.", asker.email, app.name)
                });
            Err(LoginError(error_page(
                StatusCode::FORBIDDEN,
                "Access denied",
                &message,
            )))
        }
    }
}

/// The host an application's token is handed to, and the session's record of it.
pub fn session_app(app: &AccessApp) -> (String, SessionApp) {
    let host = app
        .hostnames()
        .first()
        .map_or(app.domain.clone(), |h| h.to_string());
    let record = SessionApp {
        hostname: host.clone(),
        name: app.name.clone(),
        kind: "self_hosted".to_string(),
        uid: app.id.to_string(),
    };
    (host, record)
}

/// What a signed-in user gets for an application: a token for it, handed to
/// the application's host through `/cdn-cgi/access/authorized`.
pub struct Handover<'a> {
    pub app: &'a AccessApp,
    pub user_id: &'a str,
    pub email: &'a str,
    pub nonce: &'a SessionNonce,
    /// When the token is issued; `expires_at` was counted from it.
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub country: Option<String>,
    pub redirect_url: &'a str,
}

pub async fn hand_over(state: &AppState, handover: Handover<'_>) -> Result<Response, LoginError> {
    let now = handover.issued_at;
    let app = handover.app;
    let key = app_token::signing_key(&state.store, &app.account_id).await?;
    let team = super::global::team(state, &app.account_id).await?;
    let claims = AppClaims {
        aud: vec![app.aud.clone()],
        email: handover.email.to_string(),
        exp: handover.expires_at.unix_seconds(),
        iat: now.unix_seconds(),
        nbf: now.unix_seconds(),
        iss: team.url(state),
        kind: "app".to_string(),
        identity_nonce: handover.nonce.as_str().to_string(),
        sub: handover.user_id.to_string(),
        country: handover.country.unwrap_or_default(),
        common_name: None,
    };
    let token = app_token::mint(&key, &claims)?;
    let (host, _) = session_app(app);
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("token", &token)
        .append_pair("redirect_url", handover.redirect_url)
        .finish();
    let target = format!(
        "{}://{host}/cdn-cgi/access/authorized?{query}",
        scheme(state)
    );
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, target)]).into_response())
}

/// Who a provider vouched for, and where they were going.
pub struct Proven<'a> {
    pub email: &'a str,
    pub idp_id: &'a str,
    /// The provider's type as identities show it: `onetimepin`, `oidc`.
    pub idp_kind: &'static str,
    pub redirect_url: &'a str,
}

/// A one-time PIN's sign-in to `app`, once the code is proven.
pub async fn complete_login(
    state: &AppState,
    app: &AccessApp,
    challenge: &OtpChallenge,
    ip: IpAddr,
    country: Option<String>,
) -> Result<Response, LoginError> {
    let proven = Proven {
        email: &challenge.email,
        idp_id: &challenge.idp_id,
        idp_kind: "onetimepin",
        redirect_url: &challenge.redirect_url,
    };
    complete_proven(state, app, &proven, ip, country).await
}

/// A proven identity's sign-in to `app`: policies, the user and their seat,
/// a session (the global one: it also covers the applications opened from
/// it later), the application's token, and the global session cookie.
pub async fn complete_proven(
    state: &AppState,
    app: &AccessApp,
    proven: &Proven<'_>,
    ip: IpAddr,
    country: Option<String>,
) -> Result<Response, LoginError> {
    let asker = Asker {
        email: proven.email,
        ip,
        country: country.clone(),
        idp_id: proven.idp_id,
    };
    let policy = admit(state, app, &asker).await?;

    let now = Timestamp::now();
    let (mut user, is_new) = match state
        .store
        .find_user_by_email(&app.account_id, proven.email)
        .await?
    {
        Some(user) => (user, false),
        None => {
            let email = Email::from_stored(proven.email.to_string());
            (
                AccessUser::new(app.account_id.clone(), email, None, now),
                true,
            )
        }
    };
    if !user.seat.access {
        user.seat.access = true;
        user.seat.updated_at = now;
    }
    user.last_successful_login = Some(now);

    let (_, record) = session_app(app);
    let identity = Identity {
        account_id: app.account_id.to_string(),
        auth_status: "NONE".to_string(),
        email: user.email.as_str().to_string(),
        geo: Geo {
            country: country.clone().unwrap_or_default(),
        },
        iat: now.unix_seconds(),
        idp: IdpRef {
            id: proven.idp_id.to_string(),
            kind: proven.idp_kind.to_string(),
        },
        ip: ip.to_string(),
        user_uuid: user.id.to_string(),
        version: 2,
        ..Identity::default()
    };
    let app_expires_at = now.plus_seconds(app_token_seconds(app, &policy));
    let team = super::global::team(state, &app.account_id).await?;
    let global_expires_at = now.plus_seconds(team.session_seconds);
    let session = Session {
        nonce: SessionNonce::generate(),
        account_id: app.account_id.clone(),
        user_id: user.id.clone(),
        name: user
            .name
            .clone()
            .unwrap_or_else(|| user.email.as_str().to_string()),
        issued_at: now,
        // The session lives as long as the longer of its two tokens.
        expires_at: app_expires_at.max(global_expires_at),
        revoked_at: None,
        apps: BTreeMap::from([(app.id.to_string(), record)]),
        identity,
    };
    state
        .store
        .record_successful_login(&user, is_new, &session)
        .await?;

    let user_id = user.id.to_string();
    let global_cookie = super::global::session_cookie(
        state,
        app,
        &team,
        &super::global::GlobalToken {
            user_id: &user_id,
            email: user.email.as_str(),
            nonce: &session.nonce,
            expires_at: global_expires_at,
        },
    )
    .await?;
    let mut response = hand_over(
        state,
        Handover {
            app,
            user_id: &user_id,
            email: user.email.as_str(),
            nonce: &session.nonce,
            issued_at: now,
            expires_at: app_expires_at,
            country,
            redirect_url: proven.redirect_url,
        },
    )
    .await?;
    if let Ok(value) = axum::http::HeaderValue::from_str(&global_cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}
