//! What access decisions read, held in memory: signing keys by `kid`,
//! verified tokens, applications by host, their policies and the Access
//! groups those name, revocations, sessions and SCIM group memberships.
//!
//! A decision then needs no database round trip once its inputs have
//! been read. Each write to those inputs counts up a version in the same
//! transaction (`store::gate`); every process checks the version four
//! times a second, PostgreSQL also notifies listeners at once, and a
//! process that handled a write checks before it answers. When the version
//! moved, everything held is forgotten. If the version cannot be read for
//! [`MAX_STALENESS`], nothing held is used until it can.

mod held;
pub mod watch;

use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::auth::app_token::{self, Rejection};
use crate::domain::access_group;
use crate::domain::activity::{Session, SessionNonce};
use crate::domain::app::AccessApp;
use crate::domain::organization::Organization;
use crate::domain::secret::SecretHash;
use crate::domain::service_token::StoredServiceToken;
use crate::domain::token::ApiToken;
use crate::domain::{AccountId, Timestamp};
use crate::store::admin::AdminToken;
use crate::store::apps::HostClaim;
use crate::store::service_tokens::LAST_SEEN_RESOLUTION_SECONDS;
use crate::store::tokens::LAST_USED_RESOLUTION_SECONDS;
use crate::store::{Store, StoreResult};
pub use held::{AppRules, HeldKey, VerifiedToken};
use held::{Bounded, Held};

/// The longest a held value is used without a confirmed version check.
pub const MAX_STALENESS: Duration = Duration::from_secs(1);

pub struct Gate {
    held: Mutex<Held>,
    /// The version last read, and when the read began.
    seen: Mutex<Option<(i64, Instant)>>,
    /// Whether held values may be used: the version was read less than
    /// [`MAX_STALENESS`] ago (kept by [`Gate::sync`] and [`Gate::expire`]).
    trusted: AtomicBool,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            held: Mutex::new(Held::new(0)),
            seen: Mutex::new(None),
            trusted: AtomicBool::new(false),
        }
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Gate {
    /// Reads the version and forgets everything held if it moved.
    pub async fn sync(&self, store: &Store) -> StoreResult<()> {
        let began = Instant::now();
        let version = store.gate_version().await?;
        let moved = {
            let mut seen = lock(&self.seen);
            let moved = seen.is_none_or(|(last, _)| last != version);
            *seen = Some((version, began));
            moved
        };
        if moved {
            self.forget();
        }
        self.trusted.store(true, Ordering::Release);
        Ok(())
    }

    /// Stops using held values once the version has gone unread for
    /// [`MAX_STALENESS`]; called often by the watcher, whatever the database does.
    pub fn expire(&self) {
        let fresh = lock(&self.seen).is_some_and(|(_, at)| at.elapsed() < MAX_STALENESS);
        if !fresh {
            self.trusted.store(false, Ordering::Release);
        }
    }

    /// Drops everything held; reads under the old generation are not kept.
    pub fn forget(&self) {
        let mut held = lock(&self.held);
        *held = Held::new(held.generation + 1);
    }

    fn trusted(&self) -> bool {
        self.trusted.load(Ordering::Acquire)
    }

    /// The held value of `key` in `table`, else what `load` reads, kept if
    /// nothing changed meanwhile and `keep` says it may be.
    async fn through<K, V, E, F>(
        &self,
        table: fn(&mut Held) -> &mut Bounded<K, V>,
        key: K,
        load: F,
        keep: fn(&V) -> bool,
    ) -> Result<V, E>
    where
        K: Hash + Eq,
        V: Clone,
        F: Future<Output = Result<V, E>>,
    {
        let trusted = self.trusted();
        let generation = {
            let mut held = lock(&self.held);
            if trusted && let Some(value) = table(&mut held).get(&key) {
                return Ok(value);
            }
            held.generation
        };
        let value = load.await?;
        let mut held = lock(&self.held);
        if trusted && held.generation == generation && keep(&value) {
            table(&mut held).insert(key, value.clone());
        }
        Ok(value)
    }

    pub async fn key(&self, store: &Store, kid: &str) -> StoreResult<Option<Arc<HeldKey>>> {
        let load = async {
            let Some(stored) = store.find_signing_key(kid).await? else {
                return Ok(None);
            };
            Ok(app_token::decoding_key(&stored).ok().map(|decoding| {
                Arc::new(HeldKey {
                    account_id: stored.account_id,
                    retired_at: stored.retired_at,
                    decoding,
                })
            }))
        };
        self.through(|h| &mut h.keys, kid.to_string(), load, |_| true)
            .await
    }

    /// A token signed by one of our keys, usable now, for `audience` when
    /// given. Its issuer (the team domain of the key's account) and
    /// revocation are the caller's next checks.
    pub async fn verify(
        &self,
        store: &Store,
        token: &str,
        audience: Option<&str>,
    ) -> Result<(Arc<VerifiedToken>, Arc<HeldKey>), Rejection> {
        let digest: [u8; 32] = Sha256::digest(token).into();
        let key_of = |kid: String| async move {
            self.key(store, &kid)
                .await
                .map_err(|_| Rejection::Unverifiable)?
                .ok_or(Rejection::Unverifiable)
        };
        let load = async {
            let kid = app_token::signing_kid(token)?;
            let key = key_of(kid.clone()).await?;
            let claims = app_token::verify_signature(&key.decoding, token)?;
            Ok(Arc::new(VerifiedToken { claims, kid }))
        };
        let verified = self
            .through(|h| &mut h.tokens, digest, load, |_| true)
            .await?;
        let key = key_of(verified.kid.clone()).await?;
        app_token::check_current(&verified.claims, key.retired_at, Timestamp::now(), audience)?;
        Ok((verified, key))
    }

    async fn host_claims(&self, store: &Store, host: &str) -> StoreResult<Arc<Vec<HostClaim>>> {
        let load = async { store.host_claims(host).await.map(Arc::new) };
        self.through(|h| &mut h.host_claims, host.to_string(), load, |_| true)
            .await
    }

    pub async fn app(&self, store: &Store, id: &str) -> StoreResult<Option<Arc<AccessApp>>> {
        let load = async { Ok(store.find_app_by_id(id).await?.map(Arc::new)) };
        self.through(|h| &mut h.apps, id.to_string(), load, |_| true)
            .await
    }

    /// The application protecting `path` on `host` (see [`HostClaim::for_path`]).
    pub async fn app_for_path(
        &self,
        store: &Store,
        host: &str,
        path: &str,
    ) -> StoreResult<Option<Arc<AccessApp>>> {
        let claims = self.host_claims(store, host).await?;
        match HostClaim::for_path(&claims, host, path) {
            Some(claim) => self.app(store, &claim.app_id).await,
            None => Ok(None),
        }
    }

    /// The application `host` as a whole stands for (see [`HostClaim::serving_host`]).
    pub async fn app_by_host(
        &self,
        store: &Store,
        host: &str,
    ) -> StoreResult<Option<Arc<AccessApp>>> {
        let claims = self.host_claims(store, host).await?;
        match HostClaim::serving_host(&claims) {
            Some(claim) => self.app(store, &claim.app_id).await,
            None => Ok(None),
        }
    }

    /// Whether applications protect `hostname` under another port than `host`'s.
    pub async fn claimed_under_another_port(
        &self,
        store: &Store,
        host: &str,
        hostname: &str,
    ) -> StoreResult<bool> {
        let load = store.claimed_under_another_port(host, hostname);
        self.through(|h| &mut h.other_port, host.to_string(), load, |_| true)
            .await
    }

    /// The application's policies in order, with the Access groups they name.
    pub async fn rules(&self, store: &Store, app: &AccessApp) -> StoreResult<Arc<AppRules>> {
        let load = async {
            let policies: Vec<_> = store
                .app_policies(app)
                .await?
                .into_iter()
                .map(|(policy, _)| policy)
                .collect();
            let names_groups = policies
                .iter()
                .any(|p| access_group::named_ids(&p.rules).next().is_some());
            let groups = if names_groups {
                Some(store.access_group_book(&app.account_id).await?)
            } else {
                None
            };
            Ok(Arc::new(AppRules { policies, groups }))
        };
        self.through(|h| &mut h.rules, app.id.to_string(), load, |_| true)
            .await
    }

    /// When the application with `aud` last revoked its tokens: `None` when
    /// no application has that audience, `Some(None)` when it never did.
    pub async fn revocation(
        &self,
        store: &Store,
        aud: &str,
    ) -> StoreResult<Option<Option<Timestamp>>> {
        let load = store.app_revocation_by_aud(aud);
        self.through(|h| &mut h.revocations, aud.to_string(), load, |_| true)
            .await
    }

    /// The session behind a token. An unknown nonce is not held: the
    /// session may be written a moment later.
    pub async fn session(
        &self,
        store: &Store,
        nonce: &SessionNonce,
    ) -> StoreResult<Option<Arc<Session>>> {
        let load = async { Ok(store.find_session_by_nonce(nonce).await?.map(Arc::new)) };
        self.through(|h| &mut h.sessions, nonce.clone(), load, Option::is_some)
            .await
    }

    /// The service token of `account` with this Client ID.
    pub async fn service_token(
        &self,
        store: &Store,
        account: &AccountId,
        client_id: &str,
    ) -> StoreResult<Option<Arc<StoredServiceToken>>> {
        let load = async {
            let found = store
                .find_service_token_by_client_id(account, client_id)
                .await?;
            Ok(found.map(Arc::new))
        };
        let key = (account.to_string(), client_id.to_string());
        self.through(|h| &mut h.service_tokens, key, load, |_| true)
            .await
    }

    /// Writes back that a service token was used, at most once per
    /// [`LAST_SEEN_RESOLUTION_SECONDS`] per token and process.
    pub async fn service_token_seen(
        &self,
        store: &Store,
        token: &StoredServiceToken,
        now: Timestamp,
    ) -> StoreResult<()> {
        let due = self.use_is_due(
            |h| &mut h.service_tokens_seen,
            token.token.id.to_string(),
            token.token.last_seen_at,
            now,
            LAST_SEEN_RESOLUTION_SECONDS,
        );
        if !due {
            return Ok(());
        }
        store.mark_service_token_seen(&token.token.id, now).await
    }

    /// Whether a use of credential `id` at `now` should be written back: the
    /// last one written (by this process, else as stored) is older than
    /// `resolution_seconds`. Marks it written when it is, in one step, so
    /// concurrent uses write it once.
    fn use_is_due(
        &self,
        written: fn(&mut Held) -> &mut Bounded<String, Timestamp>,
        id: String,
        stored: Option<Timestamp>,
        now: Timestamp,
        resolution_seconds: i64,
    ) -> bool {
        let mut held = lock(&self.held);
        let marks = written(&mut held);
        let last = marks.get(&id).or(stored);
        if last.is_some_and(|at| now < at.plus_seconds(resolution_seconds)) {
            return false;
        }
        marks.insert(id, now);
        true
    }

    /// A token minted by `mint` for this (application, service token,
    /// policy), handed out again until `reuse_until` passes: signing costs
    /// far more than a decision, and the token stays valid well past that.
    pub async fn minted<F>(
        &self,
        key: (String, String, String),
        now: Timestamp,
        mint: F,
    ) -> StoreResult<Arc<str>>
    where
        F: Future<Output = StoreResult<(String, Timestamp)>>,
    {
        let trusted = self.trusted();
        let generation = {
            let held = lock(&self.held);
            if trusted
                && let Some((token, reuse_until)) = held.minted.get(&key)
                && now < reuse_until
            {
                return Ok(token);
            }
            held.generation
        };
        let (token, reuse_until) = mint.await?;
        let token: Arc<str> = Arc::from(token);
        let mut held = lock(&self.held);
        if trusted && held.generation == generation {
            held.minted.insert(key, (token.clone(), reuse_until));
        }
        Ok(token)
    }

    /// The account's Zero Trust organization, if it has one.
    pub async fn organization(
        &self,
        store: &Store,
        account: &AccountId,
    ) -> StoreResult<Option<Arc<Organization>>> {
        let load = async { Ok(store.find_organization(account).await?.map(Arc::new)) };
        self.through(
            |h| &mut h.organizations,
            account.to_string(),
            load,
            |_| true,
        )
        .await
    }

    /// The API token whose secret hashes to `hash`.
    pub async fn api_token(
        &self,
        store: &Store,
        hash: &SecretHash,
    ) -> StoreResult<Option<Arc<ApiToken>>> {
        let load = async { Ok(store.find_token_by_secret(hash).await?.map(Arc::new)) };
        self.through(
            |h| &mut h.api_tokens,
            hash.as_str().to_string(),
            load,
            |_| true,
        )
        .await
    }

    /// The operator's admin token.
    pub async fn admin_token(&self, store: &Store) -> StoreResult<Option<Arc<AdminToken>>> {
        let load = async { Ok(store.find_admin_token().await?.map(Arc::new)) };
        self.through(|h| &mut h.admin_token, (), load, |_| true)
            .await
    }

    /// Writes back that an API token was used, at most once per
    /// [`LAST_USED_RESOLUTION_SECONDS`] per token and process.
    pub async fn api_token_used(
        &self,
        store: &Store,
        token: &ApiToken,
        now: Timestamp,
    ) -> StoreResult<()> {
        let due = self.use_is_due(
            |h| &mut h.api_tokens_used,
            token.id.to_string(),
            token.last_used_on,
            now,
            LAST_USED_RESOLUTION_SECONDS,
        );
        if !due {
            return Ok(());
        }
        store.touch_token(token, now).await
    }

    /// Whether the account exists.
    pub async fn account_exists(&self, store: &Store, account: &AccountId) -> StoreResult<bool> {
        let load = async { Ok(store.find_account(account).await?.is_some()) };
        self.through(|h| &mut h.accounts, account.to_string(), load, |_| true)
            .await
    }

    /// The SCIM groups an active, provisioned user with `email` belongs to.
    pub async fn scim_groups(
        &self,
        store: &Store,
        account: &AccountId,
        email: &str,
    ) -> StoreResult<Arc<Vec<String>>> {
        let load = async {
            store
                .scim_group_ids_for_email(account, email)
                .await
                .map(Arc::new)
        };
        let key = (account.to_string(), email.to_lowercase());
        self.through(|h| &mut h.scim_groups, key, load, |_| true)
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::store::StoreError;

    async fn loads(counter: &AtomicUsize) -> StoreResult<bool> {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }

    async fn ask(gate: &Gate, counter: &AtomicUsize) {
        let answer = gate
            .through(
                |h| &mut h.other_port,
                "host".to_string(),
                loads(counter),
                |_| true,
            )
            .await;
        assert!(matches!(answer, Ok(true)));
    }

    #[tokio::test]
    async fn values_are_held_only_while_the_version_is_fresh() {
        let gate = Gate::default();
        let counter = AtomicUsize::new(0);
        ask(&gate, &counter).await;
        ask(&gate, &counter).await;
        assert_eq!(
            counter.load(Ordering::SeqCst),
            2,
            "nothing is held before a sync"
        );

        gate.trusted.store(true, Ordering::SeqCst);
        ask(&gate, &counter).await;
        ask(&gate, &counter).await;
        assert_eq!(counter.load(Ordering::SeqCst), 3, "held after one read");

        gate.forget();
        ask(&gate, &counter).await;
        assert_eq!(
            counter.load(Ordering::SeqCst),
            4,
            "read again after a change"
        );

        // The version has not been read lately: straight to the database.
        gate.expire();
        ask(&gate, &counter).await;
        assert_eq!(counter.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn a_read_that_a_change_overtook_is_not_kept() {
        let gate = Gate::default();
        gate.trusted.store(true, Ordering::SeqCst);
        let (changed, change_seen) = tokio::sync::oneshot::channel::<()>();
        let slow_read = async {
            // The change commits while this read is on its way.
            let _ = change_seen.await;
            Ok::<_, StoreError>(true)
        };
        let reading = gate.through(
            |h| &mut h.other_port,
            "host".to_string(),
            slow_read,
            |_| true,
        );
        let changing = async {
            gate.forget();
            let _ = changed.send(());
        };
        let (answer, ()) = tokio::join!(reading, changing);
        assert!(matches!(answer, Ok(true)));
        let held = lock(&gate.held).other_port.get(&"host".to_string());
        assert_eq!(held, None);
    }
}
