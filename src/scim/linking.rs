//! What a provider's SCIM users do to Access users, and which Access users
//! a provider may act on.
//!
//! A SCIM user is linked by e-mail to the Access user with that e-mail. A
//! provider acts only on the users it provisions:
//! - it *claims* an e-mail when its live SCIM user with that e-mail is the
//!   first in the account: no other provider's live SCIM user had it
//!   earlier. Deactivation, deletion and `reauth` act on the linked Access
//!   user only with the claim;
//! - it *owns* the Access user when it claims the e-mail and the Access user
//!   was created after its SCIM user (the provider provisioned the person
//!   before Access first saw them). Renames and e-mail changes
//!   (`automatic`) reach only an owned Access user, and an e-mail change
//!   only to an address no other provider's SCIM user has. Otherwise the
//!   SCIM user changes and the Access user stays as it was.

use serde_json::{Map, Value};

use super::auth::ScimCaller;
use super::error::ScimError;
use super::filter::get_ci;
use crate::app::AppState;
use crate::domain::Timestamp;
use crate::domain::idp::IdentityUpdate;
use crate::domain::user::{AccessUser, Email};
use crate::store::scim::ScimUserRecord;
use crate::store::users::SeatChange;

/// The Access user linked to `user`, when the provider claims its e-mail.
async fn claimed_access_user(
    state: &AppState,
    caller: &ScimCaller,
    user: &ScimUserRecord,
) -> Result<Option<AccessUser>, ScimError> {
    let account = &caller.idp.account_id;
    let claimed_earlier = state
        .store
        .scim_email_claimed_by_other(account, &caller.idp.id, &user.link_email, user.created_at)
        .await?;
    if claimed_earlier {
        tracing::warn!(scim_user = %user.id, "another provider's SCIM holds this e-mail: its Access user is left alone");
        return Ok(None);
    }
    Ok(state
        .store
        .find_user_by_email(account, &user.link_email)
        .await?)
}

/// What Cloudflare does when a provider deactivates or deletes a user: the
/// linked Access user loses their sessions (`user_deprovision`) and their
/// seat (`seat_deprovision`), before the SCIM answer is sent.
pub async fn deprovision(
    state: &AppState,
    caller: &ScimCaller,
    user: &ScimUserRecord,
) -> Result<(), ScimError> {
    if !caller.idp.scim.user_deprovision {
        return Ok(());
    }
    let Some(access_user) = claimed_access_user(state, caller, user).await? else {
        return Ok(());
    };
    let now = Timestamp::now();
    state
        .store
        .revoke_user_sessions(&access_user.id, now)
        .await?;
    if caller.idp.scim.seat_deprovision {
        let change = SeatChange {
            seat_uid: access_user.seat.id.clone(),
            access: false,
            gateway: false,
        };
        let _ = state
            .store
            .update_seats(&caller.idp.account_id, &[change], now)
            .await?;
    }
    Ok(())
}

/// What a changed name or e-mail does to the Access user, per the
/// provider's `identity_update_behavior`: `automatic` copies it over (to an
/// owned user only), `reauth` ends their sessions so the next login carries
/// it, `no_action` leaves Access alone.
pub async fn follow_identity_change(
    state: &AppState,
    caller: &ScimCaller,
    before: &ScimUserRecord,
    after: &ScimUserRecord,
) -> Result<(), ScimError> {
    let display = |u: &ScimUserRecord| {
        get_ci(&u.resource, "displayName")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let new_email = after.link_email.clone();
    let renamed = display(before) != display(after);
    let moved = !before.link_email.eq_ignore_ascii_case(&new_email);
    if !renamed && !moved {
        return Ok(());
    }
    let Some(mut access_user) = claimed_access_user(state, caller, before).await? else {
        return Ok(());
    };
    let now = Timestamp::now();
    match caller.idp.scim.identity_update {
        IdentityUpdate::NoAction => {}
        IdentityUpdate::Reauth => {
            state
                .store
                .revoke_user_sessions(&access_user.id, now)
                .await?;
        }
        IdentityUpdate::Automatic => {
            if access_user.created_at < before.created_at {
                tracing::warn!(user = %access_user.id, "SCIM identity change not applied: the Access user existed before this provider provisioned them");
                return Ok(());
            }
            if renamed && let Some(name) = display(after) {
                access_user.name = Some(name);
                access_user.updated_at = now;
                state.store.rename_user(&access_user).await?;
            }
            if moved {
                move_email(state, caller, &access_user, &new_email, now).await?;
            }
        }
    }
    Ok(())
}

/// Gives an owned Access user the SCIM user's new e-mail, unless another
/// Access user or another provider's SCIM user has it.
async fn move_email(
    state: &AppState,
    caller: &ScimCaller,
    access_user: &AccessUser,
    new_email: &str,
    now: Timestamp,
) -> Result<(), ScimError> {
    let Ok(email) = Email::parse(new_email) else {
        return Ok(());
    };
    let taken_by_other_provider = state
        .store
        .scim_email_claimed_by_other(&caller.idp.account_id, &caller.idp.id, new_email, now)
        .await?;
    if taken_by_other_provider {
        tracing::warn!(user = %access_user.id, "SCIM e-mail change not applied: another provider's SCIM user has that e-mail");
        return Ok(());
    }
    match state
        .store
        .change_user_email(access_user, &email, now)
        .await
    {
        Ok(_) => Ok(()),
        Err(crate::store::StoreError::Conflict(_)) => {
            tracing::warn!(user = %access_user.id, "SCIM e-mail change not applied: another Access user has that e-mail");
            Ok(())
        }
        Err(other) => Err(other.into()),
    }
}

/// The e-mail that links a SCIM user to an Access user: the primary e-mail,
/// else the first, else the userName.
pub fn link_email(resource: &Map<String, Value>, user_name: &str) -> String {
    let resource = Value::Object(resource.clone());
    let emails = get_ci(&resource, "emails")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let value = |e: &Value| {
        get_ci(e, "value")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    emails
        .iter()
        .find(|e| get_ci(e, "primary") == Some(&Value::Bool(true)))
        .and_then(value)
        .or_else(|| emails.first().and_then(value))
        .unwrap_or_else(|| user_name.to_string())
}
