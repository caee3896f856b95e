//! The admin token: taken from configuration, or generated on first start,
//! or rotated offline. Only its hash is stored.

use crate::config::Secret;
use crate::domain::secret::{self, SecretHash, SecretKind};
use crate::domain::{Timestamp, TokenId};
use crate::store::admin::AdminToken;
use crate::store::{Store, StoreResult};

pub async fn ensure_admin_token(store: &Store, configured: Option<&Secret>) -> StoreResult<()> {
    let current = store.find_admin_token().await?;
    match configured {
        Some(secret) => {
            let hash = SecretHash::of(secret.expose());
            if current.is_none_or(|token| !token.hash.matches(&hash)) {
                install(store, hash).await?;
                tracing::info!("admin token taken from configuration");
            }
        }
        None if current.is_none() => {
            let minted = secret::mint(SecretKind::UserToken);
            install(store, minted.hash).await?;
            super::announce(&format!(
                "admin token (shown once; keep it, or rotate with `accessd admin-token`): {}",
                minted.value
            ));
        }
        None => {}
    }
    Ok(())
}

pub async fn rotate_admin_token(store: &Store) -> StoreResult<String> {
    let minted = secret::mint(SecretKind::UserToken);
    install(store, minted.hash).await?;
    Ok(minted.value)
}

async fn install(store: &Store, hash: SecretHash) -> StoreResult<()> {
    let token = AdminToken {
        id: TokenId::generate(),
        hash,
        created_on: Timestamp::now(),
    };
    store.replace_admin_token(&token).await
}
