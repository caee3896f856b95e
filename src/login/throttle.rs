//! Limits on mailing sign-in codes, which anyone can ask for: per address
//! (so an inbox cannot be flooded), per client (so one client cannot spray
//! many addresses) and per application (a ceiling on the mail one
//! application can cause). Counters live in the database, so the limits hold
//! across concurrent requests and across servers sharing it.

use std::net::IpAddr;

use axum::http::StatusCode;

use super::LoginError;
use super::pages::error_page;
use crate::app::AppState;
use crate::domain::Timestamp;
use crate::domain::app::AccessApp;
use crate::domain::user::Email;
use crate::store::throttle::{Claim, Limit};

const WINDOW_SECONDS: i64 = 10 * 60;
const CODES_PER_ADDRESS: i64 = 5;

fn per_window(per_window: i64) -> Limit {
    Limit {
        per_window,
        window_seconds: WINDOW_SECONDS,
    }
}

/// The client an address belongs to: an IPv4 address, or the /64 of an IPv6
/// one (a single host usually holds a whole /64).
fn client_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Claims one code for `email` asked by `client` on `app`, or refuses with 429.
pub async fn claim_code(
    state: &AppState,
    app: &AccessApp,
    email: &Email,
    client: IpAddr,
) -> Result<(), LoginError> {
    let now = Timestamp::now();
    let claims = [
        (
            format!("otp-client:{}", client_key(client)),
            per_window(state.code_limits.per_client),
            "Too many codes were asked from your network just now.",
        ),
        (
            format!("otp-address:{}:{}", app.account_id, email.key()),
            per_window(CODES_PER_ADDRESS),
            "Several codes were sent to this address just now. Use the newest one, or wait.",
        ),
        (
            format!("otp-application:{}", app.id),
            per_window(state.code_limits.per_application),
            "This application is sending too many codes just now.",
        ),
    ];
    for (key, limit, why) in claims {
        if let Claim::Refused {
            retry_after_seconds,
        } = state.store.claim_throttle(&key, limit, now).await?
        {
            let message = format!("{why} Try again in {retry_after_seconds} seconds.");
            let page = error_page(StatusCode::TOO_MANY_REQUESTS, "Too many codes", &message)
                .with_retry_after(retry_after_seconds);
            return Err(LoginError::from(page));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_keyed_by_ipv4_address_or_ipv6_prefix() {
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(client_key(mapped), "192.0.2.7");
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse()
            .unwrap_or(IpAddr::from([0; 4]));
        let b: IpAddr = "2001:db8:1:2:bbbb::9"
            .parse()
            .unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(client_key(a), client_key(b));
        assert_eq!(client_key(a), "2001:db8:1:2::/64");
    }
}
