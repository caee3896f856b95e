//! The maps a [`super::Gate`] keeps: bounded, and all forgotten at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use jsonwebtoken::DecodingKey;

use crate::auth::app_token::AppClaims;
use crate::domain::Timestamp;
use crate::domain::access_group::GroupBook;
use crate::domain::activity::{Session, SessionNonce};
use crate::domain::app::AccessApp;
use crate::domain::organization::Organization;
use crate::domain::policy::AccessPolicy;
use crate::domain::service_token::StoredServiceToken;
use crate::domain::token::ApiToken;
use crate::store::admin::AdminToken;
use crate::store::apps::HostClaim;

/// A map that holds at most `cap` entries. When full it starts over
/// rather than tracking use: what is still wanted is read again once,
/// and no request pattern can make it grow.
pub struct Bounded<K, V> {
    entries: HashMap<K, V>,
    cap: usize,
}

impl<K: Hash + Eq, V: Clone> Bounded<K, V> {
    pub fn new(cap: usize) -> Self {
        Self {
            entries: HashMap::new(),
            cap,
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.entries.get(key).cloned()
    }

    pub fn insert(&mut self, key: K, value: V) {
        if self.entries.len() >= self.cap && !self.entries.contains_key(&key) {
            self.entries.clear();
        }
        self.entries.insert(key, value);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A signing key as verification needs it.
pub struct HeldKey {
    pub account_id: String,
    pub retired_at: Option<Timestamp>,
    pub decoding: DecodingKey,
}

/// The policies of an application, in order, and the Access groups of its
/// account when a policy names one.
pub struct AppRules {
    pub policies: Vec<AccessPolicy>,
    pub groups: Option<GroupBook>,
}

/// A token whose signature and issuer were checked once; time, key
/// retirement, audience and revocation are checked on every use.
pub struct VerifiedToken {
    pub claims: AppClaims,
    pub kid: String,
}

/// Everything held, and the generation it belongs to: a value read from
/// the database under one generation is never kept under the next.
pub struct Held {
    pub generation: u64,
    pub keys: Bounded<String, Option<Arc<HeldKey>>>,
    pub host_claims: Bounded<String, Arc<Vec<HostClaim>>>,
    pub other_port: Bounded<String, bool>,
    pub apps: Bounded<String, Option<Arc<AccessApp>>>,
    pub rules: Bounded<String, Arc<AppRules>>,
    pub revocations: Bounded<String, Option<Option<Timestamp>>>,
    pub sessions: Bounded<SessionNonce, Option<Arc<Session>>>,
    pub scim_groups: Bounded<(String, String), Arc<Vec<String>>>,
    pub tokens: Bounded<[u8; 32], Arc<VerifiedToken>>,
    pub service_tokens: Bounded<(String, String), Option<Arc<StoredServiceToken>>>,
    /// Tokens minted for service tokens, by application, service token
    /// and policy, with the time until which they are handed out again.
    pub minted: Bounded<(String, String, String), (Arc<str>, Timestamp)>,
    pub organizations: Bounded<String, Option<Arc<Organization>>>,
    /// API tokens by the hash of their secret, and the admin token.
    pub api_tokens: Bounded<String, Option<Arc<ApiToken>>>,
    pub admin_token: Bounded<(), Option<Arc<AdminToken>>>,
    /// When each API token's use was last written back.
    pub api_tokens_used: Bounded<String, Timestamp>,
    pub accounts: Bounded<String, bool>,
    /// When each service token's use was last written back.
    pub service_tokens_seen: Bounded<String, Timestamp>,
}

impl Held {
    pub fn new(generation: u64) -> Self {
        Self {
            generation,
            keys: Bounded::new(1_000),
            host_claims: Bounded::new(10_000),
            other_port: Bounded::new(10_000),
            apps: Bounded::new(10_000),
            rules: Bounded::new(10_000),
            revocations: Bounded::new(10_000),
            sessions: Bounded::new(50_000),
            scim_groups: Bounded::new(50_000),
            tokens: Bounded::new(50_000),
            service_tokens: Bounded::new(10_000),
            service_tokens_seen: Bounded::new(10_000),
            organizations: Bounded::new(10_000),
            api_tokens: Bounded::new(10_000),
            admin_token: Bounded::new(1),
            api_tokens_used: Bounded::new(10_000),
            accounts: Bounded::new(10_000),
            minted: Bounded::new(10_000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_map_starts_over_instead_of_growing() {
        let mut map = Bounded::new(3);
        for key in 0..3 {
            map.insert(key, key);
        }
        map.insert(1, 10);
        assert_eq!((map.len(), map.get(&1)), (3, Some(10)));
        map.insert(7, 7);
        assert_eq!((map.len(), map.get(&0), map.get(&7)), (1, None, Some(7)));
    }
}
