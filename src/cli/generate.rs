//! `accessd generate`: bulk test data, written through the store as real
//! logins would write it. Users come with seats, sessions, a last seen
//! identity and failed logins, so every users operation has something to show.

use std::collections::BTreeMap;
use std::io::Write;

use clap::Args;
use serde_json::{Value, json};

use crate::BoxError;
use crate::api::access_user_records::{ActiveSessionView, FailedLoginView, SessionIdentityView};
use crate::api::access_users::UserView;
use crate::config::DatabaseArgs;
use crate::domain::account::{Account, AccountSettings, AccountType};
use crate::domain::activity::{
    FailedLogin, FailedLoginMetadata, Geo, Identity, IdpRef, Session, SessionApp, SessionNonce,
    new_ray_id,
};
use crate::domain::user::{AccessUser, Email};
use crate::domain::{AccountId, Timestamp};
use crate::store::Store;

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Add the users to this account; without it a new account is created.
    #[arg(long)]
    pub account: Option<String>,

    /// How many users to create.
    #[arg(long, default_value_t = 1000)]
    pub users: u64,

    /// Active sessions per user (each with its captured identity).
    #[arg(long, default_value_t = 0)]
    pub sessions_per_user: u32,

    /// Failed logins per user.
    #[arg(long, default_value_t = 0)]
    pub failed_logins_per_user: u32,

    /// Print every generated record as the API shows it (for small runs).
    #[arg(long)]
    pub json: bool,
}

const BATCH: usize = 5_000;

pub async fn run(args: GenerateArgs) -> Result<(), BoxError> {
    let store = Store::connect(&args.database.url).await?;
    store.migrate().await?;
    let account = match &args.account {
        Some(raw) => {
            let id = AccountId::parse(raw).ok_or("--account must be 32 hexadecimal characters")?;
            store.find_account(&id).await?.ok_or("no such account")?.id
        }
        None => {
            let account = Account {
                id: AccountId::generate(),
                name: "Generated".to_string(),
                account_type: AccountType::Standard,
                settings: AccountSettings::default(),
                created_on: Timestamp::now(),
            };
            store.create_account(&account).await?;
            account.id
        }
    };
    let run_tag = &AccountId::generate().to_string()[..8];
    let mut printed = Vec::new();
    let mut done = 0u64;
    let mut last_report = 0u64;
    while done < args.users {
        let batch = usize::try_from(args.users - done)
            .unwrap_or(BATCH)
            .min(BATCH);
        let now = Timestamp::now();
        let users: Vec<AccessUser> = (0..batch as u64)
            .map(|i| {
                let n = done + i;
                let email = Email::from_stored(format!("user{n:08}.{run_tag}@generated.example"));
                let mut user = AccessUser::new(
                    account.clone(),
                    email,
                    Some(format!("Generated User {n}")),
                    now,
                );
                if args.sessions_per_user > 0 {
                    user.seat.access = true;
                    user.last_successful_login = Some(now);
                }
                user
            })
            .collect();
        store.create_users_bulk(&users).await?;
        let with_activity =
            args.json || args.sessions_per_user > 0 || args.failed_logins_per_user > 0;
        for user in users.into_iter().filter(|_| with_activity) {
            let record = activity_for(&store, &user, &args, now).await?;
            if args.json {
                printed.push(record);
            }
        }
        done += batch as u64;
        if done == args.users || done - last_report >= args.users.div_ceil(20).max(1) {
            last_report = done;
            eprintln!(
                "generated {done}/{} users ({}%)",
                args.users,
                done * 100 / args.users.max(1)
            );
        }
    }
    store.close().await;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            json!({ "account_id": account, "users": printed })
        )?;
    } else {
        writeln!(out, "account {account}: {} users generated", args.users)?;
    }
    Ok(())
}

/// Writes the user's sessions, identity and failed logins; returns them as the API shows them.
async fn activity_for(
    store: &Store,
    user: &AccessUser,
    args: &GenerateArgs,
    now: Timestamp,
) -> Result<Value, BoxError> {
    let mut sessions = Vec::new();
    let mut last_seen = None;
    for s in 0..args.sessions_per_user {
        let issued = now.plus_seconds(-i64::from(s) * 60);
        let identity = Identity {
            account_id: user.account_id.to_string(),
            auth_status: "NONE".to_string(),
            email: user.email.as_str().to_string(),
            geo: Geo {
                country: "US".to_string(),
            },
            iat: issued.unix_seconds(),
            idp: IdpRef {
                id: "00000000-0000-4000-8000-000000000001".to_string(),
                kind: "onetimepin".to_string(),
            },
            ip: format!("203.0.113.{}", s % 250 + 1),
            user_uuid: user.id.to_string(),
            version: 2,
            ..Identity::default()
        };
        let app_id = uuid::Uuid::new_v4().to_string();
        let session = Session {
            nonce: SessionNonce::generate(),
            account_id: user.account_id.clone(),
            user_id: user.id.clone(),
            name: user
                .name
                .clone()
                .unwrap_or_else(|| user.email.as_str().to_string()),
            issued_at: issued,
            expires_at: issued.plus_seconds(24 * 3600),
            revoked_at: None,
            apps: BTreeMap::from([(
                app_id.clone(),
                SessionApp {
                    hostname: "app.generated.example".to_string(),
                    name: "Generated App".to_string(),
                    kind: "self_hosted".to_string(),
                    uid: app_id,
                },
            )]),
            identity: identity.clone(),
        };
        store.record_session(&session).await?;
        if s == 0 {
            store
                .record_last_identity(&user.id, issued, &identity)
                .await?;
            last_seen = Some(identity);
        }
        sessions.push(json!({
            "listed": ActiveSessionView::from(session.clone()),
            "get": SessionIdentityView::new(session, now),
        }));
    }
    let mut failures = Vec::new();
    for f in 0..args.failed_logins_per_user {
        let at = now.plus_seconds(-i64::from(f) * 3600 - 1);
        let failure = FailedLogin {
            account_id: user.account_id.clone(),
            user_id: user.id.clone(),
            occurred_at: at,
            expires_at: at.plus_seconds(30 * 24 * 3600),
            metadata: FailedLoginMetadata {
                app_name: "Generated App".to_string(),
                aud: format!("{}{}", AccountId::generate(), AccountId::generate()),
                datetime: at.to_millis_string(),
                ray_id: new_ray_id(),
                user_email: user.email.as_str().to_string(),
                user_uuid: user.id.to_string(),
                reason: "policy_denied".to_string(),
            },
        };
        store.record_failed_login(&failure).await?;
        failures.push(FailedLoginView::from(failure));
    }
    Ok(json!({
        "user": UserView::from(user.clone()),
        "sessions": sessions,
        "last_seen_identity": last_seen,
        "failed_logins": failures,
    }))
}
