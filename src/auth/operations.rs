//! What each API operation demands, as a type to name in a handler's
//! signature: `Authorized<TokensWrite>`. The accepted permission groups are
//! those Cloudflare publishes per operation (any one is enough); an empty
//! list means only the admin token may call it.

use crate::domain::permission::*;

pub trait Operation: Send + Sync + 'static {
    const GROUPS: &'static [&'static str];
}

macro_rules! operation {
    ($(#[$doc:meta])* $name:ident => [$($group:expr),* $(,)?]) => {
        $(#[$doc])*
        pub struct $name;
        impl Operation for $name {
            const GROUPS: &'static [&'static str] = &[$($group),*];
        }
    };
}

operation!(
    /// Creating and deleting accounts belongs to the operator.
    AdminOnly => []
);
operation!(AccountRead => [ACCOUNT_SETTINGS_READ, ACCOUNT_SETTINGS_WRITE]);
operation!(AccountWrite => [ACCOUNT_SETTINGS_WRITE]);
operation!(TokensRead => [ACCOUNT_API_TOKENS_READ, ACCOUNT_API_TOKENS_WRITE]);
operation!(TokensWrite => [ACCOUNT_API_TOKENS_WRITE]);
operation!(
    /// Reading Access users and their sessions, identities and failed logins.
    UsersRead => [ACCESS_AUDIT_LOGS_READ]
);
operation!(
    /// Creating, renaming and deleting Access users, and their seats.
    /// Cloudflare publishes no group for create and delete; the seats group,
    /// which guards update, guards them too.
    SeatsWrite => [ZERO_TRUST_SEATS_WRITE]
);
operation!(IdpsRead => [ACCESS_ORGS_IDPS_GROUPS_READ, ACCESS_ORGS_IDPS_GROUPS_WRITE]);
operation!(IdpsWrite => [ACCESS_ORGS_IDPS_GROUPS_WRITE]);
operation!(
    /// Reading Access groups: Cloudflare files them with organizations and
    /// identity providers (`x-api-token-group` of `access-groups-list-access-groups`).
    GroupsRead => [ACCESS_ORGS_IDPS_GROUPS_READ, ACCESS_ORGS_IDPS_GROUPS_WRITE]
);
operation!(GroupsWrite => [ACCESS_ORGS_IDPS_GROUPS_WRITE]);
operation!(AppsRead => [ACCESS_APPS_POLICIES_READ, ACCESS_APPS_POLICIES_WRITE, ACCESS_APPS_POLICIES_REVOKE]);
operation!(AppsWrite => [ACCESS_APPS_POLICIES_WRITE]);
operation!(AppsRevoke => [ACCESS_APPS_POLICIES_REVOKE, ACCESS_APPS_POLICIES_WRITE]);
operation!(ServiceTokensRead => [ACCESS_SERVICE_TOKENS_READ, ACCESS_SERVICE_TOKENS_WRITE]);
operation!(ServiceTokensWrite => [ACCESS_SERVICE_TOKENS_WRITE]);
operation!(
    /// Ending every session of a user.
    RevokeUsers => [ACCESS_ORGS_IDPS_GROUPS_WRITE]
);
