//! The one-time PIN: six digits by e-mail, kept only as a salted hash,
//! single use, valid for ten minutes, locked after five wrong tries.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use rand::Rng;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::complete::{Failure, complete_login, record_failure};
use super::pages::{self, Page, error_page};
use super::{LoginError, app_by_domain, check_csrf, checked_redirect, csrf_token, pin_provider};
use crate::app::AppState;
use crate::domain::Timestamp;
use crate::domain::user::Email;
use crate::store::logins::OtpChallenge;

pub const PIN_LIFETIME_SECONDS: i64 = 10 * 60;
pub const MAX_ATTEMPTS: i64 = 5;

fn hash_code(salt: &str, code: &str) -> String {
    hex::encode(Sha256::digest(format!("{salt}:{code}").as_bytes()))
}

#[derive(Deserialize)]
pub struct SendForm {
    app: String,
    redirect_url: String,
    email: String,
    csrf: String,
}

/// `POST /cdn-cgi/access/otp/send`: mails a code and shows where to type it.
pub async fn send_code(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SendForm>,
) -> Result<Page, LoginError> {
    check_csrf(&state, &headers, &form.csrf).await?;
    let app = app_by_domain(&state, &form.app).await?;
    let redirect = checked_redirect(&state, &app, Some(&form.redirect_url))?;
    let Some(idp) = pin_provider(&state, &app).await? else {
        return Err(LoginError(error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "No sign-in method",
            "One-time PINs are not enabled for this application.",
        )));
    };
    let (csrf, _) = csrf_token(&headers);
    let email = match Email::parse(form.email.trim()) {
        Ok(email) => email,
        Err(why) => {
            let body = pages::email_form(&app.name, &app.domain, &redirect, &csrf, Some(why));
            return Ok(Page::new(
                StatusCode::BAD_REQUEST,
                &format!("Sign in to {}", app.name),
                body,
            ));
        }
    };
    let client = super::client_address(&state, peer.ip(), &headers);
    super::throttle::claim_code(&state, &app, &email, client).await?;
    let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32));
    let salt = crate::domain::TokenId::generate().to_string();
    let now = Timestamp::now();
    let challenge = OtpChallenge {
        id: crate::domain::TokenId::generate().to_string(),
        account_id: app.account_id.clone(),
        app_id: app.id.clone(),
        idp_id: idp.id.to_string(),
        email: email.as_str().to_string(),
        code_hash: hash_code(&salt, &code),
        salt,
        redirect_url: redirect,
        attempts: 0,
        created_at: now,
        expires_at: now.plus_seconds(PIN_LIFETIME_SECONDS),
        consumed: false,
    };
    state.store.create_otp_challenge(&challenge).await?;
    if let Err(err) = state
        .mailer
        .send_pin(email.as_str(), &code, &app.name, PIN_LIFETIME_SECONDS / 60)
        .await
    {
        tracing::error!(%err, "could not send a sign-in code");
        return Err(LoginError(error_page(
            StatusCode::BAD_GATEWAY,
            "Could not send the code",
            "The e-mail with your code could not be sent. Try again in a moment.",
        )));
    }
    Ok(Page::new(
        StatusCode::OK,
        "Check your e-mail",
        pages::code_form(email.as_str(), &challenge.id, &csrf, None),
    ))
}

#[derive(Deserialize)]
pub struct VerifyForm {
    challenge: String,
    code: String,
    csrf: String,
}

/// `POST /cdn-cgi/access/otp/verify`: checks the code, then signs the user in.
pub async fn verify_code(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<VerifyForm>,
) -> Result<Response, LoginError> {
    check_csrf(&state, &headers, &form.csrf).await?;
    let client = super::client_address(&state, peer.ip(), &headers);
    let gone = || {
        LoginError(error_page(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in attempt is no longer valid. Open the application again to get a new code.",
        ))
    };
    let challenge = state
        .store
        .find_otp_challenge(&form.challenge)
        .await?
        .ok_or_else(gone)?;
    let app = state
        .store
        .find_app(&challenge.account_id, &challenge.app_id)
        .await?
        .ok_or_else(gone)?;
    let now = Timestamp::now();
    let failure = |reason| Failure {
        app: &app,
        email: &challenge.email,
        reason,
        ip: client,
    };
    let locked = || {
        LoginError(error_page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many tries",
            "This code is locked after too many wrong tries. Open the application again to get a new one.",
        ))
    };
    let used = || {
        LoginError(error_page(
            StatusCode::BAD_REQUEST,
            "Code already used",
            "This code has been used. Open the application again to get a new one.",
        ))
    };
    // The try is counted before the code is compared, in one statement that
    // refuses once the limit is reached: concurrent guesses cannot get more
    // comparisons than MAX_ATTEMPTS between them.
    let Some(attempt) = state
        .store
        .claim_otp_attempt(&challenge.id, MAX_ATTEMPTS, now)
        .await?
    else {
        let (reason, page) = if challenge.attempts >= MAX_ATTEMPTS {
            ("pin_locked", locked())
        } else if challenge.consumed {
            ("pin_reused", used())
        } else if now >= challenge.expires_at {
            ("pin_expired", gone())
        } else {
            // Lost a race for the last try, or to the right code.
            ("pin_locked", locked())
        };
        record_failure(&state, failure(reason), false).await?;
        return Err(page);
    };
    let submitted = hash_code(&challenge.salt, form.code.trim());
    if !bool::from(submitted.as_bytes().ct_eq(challenge.code_hash.as_bytes())) {
        let now_locked = attempt >= MAX_ATTEMPTS;
        record_failure(
            &state,
            failure(if now_locked {
                "pin_locked"
            } else {
                "pin_invalid"
            }),
            false,
        )
        .await?;
        if now_locked {
            return Err(locked());
        }
        let (csrf, _) = csrf_token(&headers);
        let message = format!(
            "That code is not right. {} tries left.",
            MAX_ATTEMPTS - attempt
        );
        let body = pages::code_form(&challenge.email, &challenge.id, &csrf, Some(&message));
        return Err(LoginError(Page::new(
            StatusCode::UNAUTHORIZED,
            "Check your e-mail",
            body,
        )));
    }
    if !state
        .store
        .consume_otp_challenge(&challenge.id, now)
        .await?
    {
        record_failure(&state, failure("pin_reused"), false).await?;
        return Err(used());
    }
    let country = super::client_country(&state, &headers);
    complete_login(&state, &app, &challenge, client, country).await
}
