//! One test binary; one module per feature. Each test starts the real
//! server (see `common`) on SQLite and, when configured, on PostgreSQL.

mod common;

mod access_groups;
mod accounts;
mod apps_and_policies;
mod auth_failures;
mod bad_input;
mod connections;
mod durability;
mod first_run;
mod forward_auth;
mod global_session;
mod hostile_input;
mod identity_providers;
mod key_rotation;
mod multi_process;
mod oidc_login;
mod raw_db;
mod scim;
mod scim_access;
mod scim_limits;
mod scim_lookups;
mod scim_schema;
mod scim_sizes;
mod secrets_at_rest;
mod service_tokens;
mod sign_in_attacks;
mod store_conformance;
mod tokens;
mod user_records;
mod users;
