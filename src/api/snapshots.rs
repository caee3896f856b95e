//! Which v4 listing a request continues: its caller and parameters, as a
//! [`ListingKey`] (see `crate::listing` for what a listing pins and why).

use crate::auth::Principal;
use crate::listing::ListingKey;

/// The listing asked for at `path?query` by `principal`, whatever its `page`.
pub fn listing_key(principal: &Principal, path: &str, query: Option<&str>) -> ListingKey {
    let caller = match principal {
        Principal::Admin { token_id } => format!("admin:{token_id}"),
        Principal::Token(token) => format!("token:{}", token.id),
    };
    ListingKey::new(caller, path, query, "page")
}
