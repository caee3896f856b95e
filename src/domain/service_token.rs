//! Access service tokens: a Client ID and a Client Secret that a machine
//! presents instead of signing in. Only the SHA-256 of a secret is kept; a
//! rotation keeps the previous secret's hash until its grace period ends.

use std::fmt;
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::secret::SecretHash;
use super::{AccountId, Timestamp, duration};

pub use super::ids::ServiceTokenId;

const CLIENT_ID_SUFFIX: &str = ".access";
const CLIENT_ID_HEX: usize = 32;

/// A new Client ID: 32 random hex characters and `.access`, as Cloudflare's.
pub fn new_client_id() -> String {
    let bytes: [u8; CLIENT_ID_HEX / 2] = rand::rngs::OsRng.r#gen();
    format!("{}{CLIENT_ID_SUFFIX}", hex::encode(bytes))
}

/// Whether `raw` has the shape of a Client ID this server mints.
fn is_client_id(raw: &str) -> bool {
    raw.strip_suffix(CLIENT_ID_SUFFIX)
        .is_some_and(|hex| hex.len() == CLIENT_ID_HEX && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

const SECRET_PREFIX: &str = "cfast_";
const SECRET_RANDOM: usize = 40;
const SECRET_CHECKSUM: usize = 8;
const ALPHANUMERIC: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Longer presented secrets are refused before they are hashed.
const MAX_SECRET_CHARS: usize = 256;

/// A freshly minted Client Secret: `cfast_`, 40 random alphanumerics (238
/// bits) and an 8-character checksum. Shown once, then only its hash is kept.
pub struct NewClientSecret {
    pub value: String,
    pub hash: SecretHash,
}

impl fmt::Debug for NewClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewClientSecret(<redacted>)")
    }
}

pub fn mint_client_secret() -> NewClientSecret {
    let mut rng = rand::rngs::OsRng;
    let mut value = String::with_capacity(SECRET_PREFIX.len() + SECRET_RANDOM + SECRET_CHECKSUM);
    value.push_str(SECRET_PREFIX);
    for _ in 0..SECRET_RANDOM {
        value.push(char::from(
            ALPHANUMERIC[rng.gen_range(0..ALPHANUMERIC.len())],
        ));
    }
    let digest = Sha256::digest(value.as_bytes());
    for byte in digest.iter().take(SECRET_CHECKSUM) {
        value.push(char::from(
            ALPHANUMERIC[usize::from(*byte) % ALPHANUMERIC.len()],
        ));
    }
    let hash = SecretHash::of(&value);
    NewClientSecret { value, hash }
}

/// `duration` of a token: a Go duration, or `forever`.
pub const FOREVER: &str = "forever";
pub const DEFAULT_DURATION: &str = "8760h";

/// Checks a `duration`; `None` means the token never expires.
pub fn parse_duration(raw: &str) -> Result<Option<Duration>, String> {
    if raw == FOREVER {
        return Ok(None);
    }
    match duration::parse(raw) {
        Ok(d) if !d.is_zero() => Ok(Some(d)),
        Ok(_) => Err("duration must be longer than zero, such as 8760h, or forever".to_string()),
        Err(why) => Err(format!("{why}, or forever")),
    }
}

/// When a token with `duration` made or refreshed at `now` expires.
pub fn expiry(now: Timestamp, duration: Option<Duration>) -> Option<Timestamp> {
    duration.map(|d| now.plus_seconds(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)))
}

/// A service token as the API shows it (never its secrets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceToken {
    pub id: ServiceTokenId,
    pub account_id: AccountId,
    pub name: String,
    pub client_id: String,
    /// Go duration or `forever`.
    pub duration: String,
    pub enabled: bool,
    /// `None` for a token that lasts forever.
    pub expires_at: Option<Timestamp>,
    pub client_secret_version: i64,
    /// Until when the secret before the last rotation is still accepted.
    pub previous_client_secret_expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_seen_at: Option<Timestamp>,
}

/// A token with the hashes of its current and previous secrets.
#[derive(Clone, Debug)]
pub struct StoredServiceToken {
    pub token: ServiceToken,
    pub secret_hash: SecretHash,
    pub previous_secret_hash: Option<SecretHash>,
}

/// What a caller chooses for a new token.
pub struct NewServiceToken {
    pub account_id: AccountId,
    pub name: String,
    pub duration: String,
    pub expires_at: Option<Timestamp>,
    pub enabled: bool,
    pub client_secret_version: i64,
}

impl StoredServiceToken {
    /// A new token with a fresh Client ID and secret; the secret's value is
    /// returned beside it, to be shown once.
    pub fn issue(new: NewServiceToken, now: Timestamp) -> (Self, String) {
        let secret = mint_client_secret();
        let token = ServiceToken {
            id: ServiceTokenId::generate(),
            account_id: new.account_id,
            name: new.name,
            client_id: new_client_id(),
            duration: new.duration,
            enabled: new.enabled,
            expires_at: new.expires_at,
            client_secret_version: new.client_secret_version,
            previous_client_secret_expires_at: None,
            created_at: now,
            updated_at: now,
            last_seen_at: None,
        };
        let stored = Self {
            token,
            secret_hash: secret.hash,
            previous_secret_hash: None,
        };
        (stored, secret.value)
    }
}

/// Why a presented service token is not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Headers missing one half, repeated, too long, or sent in both styles.
    Malformed(&'static str),
    /// No token of the account has this Client ID.
    UnknownClientId,
    /// Neither the current secret nor a previous one still in its grace period.
    WrongSecret,
    Disabled,
    Expired,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Malformed(why) => why,
            Refusal::UnknownClientId => "unknown client id",
            Refusal::WrongSecret => "wrong client secret",
            Refusal::Disabled => "service token disabled",
            Refusal::Expired => "service token expired",
        }
    }
}

/// A Client ID and Client Secret as a request presented them.
pub struct Credentials {
    pub client_id: String,
    secret: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.client_id)
    }
}

impl Credentials {
    pub fn new(client_id: &str, secret: &str) -> Result<Self, Refusal> {
        if secret.is_empty() || secret.chars().count() > MAX_SECRET_CHARS {
            return Err(Refusal::Malformed("client secret of the wrong length"));
        }
        if !is_client_id(client_id) {
            // Not one this server minted: answered like any unknown one.
            return Err(Refusal::UnknownClientId);
        }
        Ok(Self {
            client_id: client_id.to_ascii_lowercase(),
            secret: secret.to_string(),
        })
    }
}

pub const CLIENT_ID_HEADER: &str = "cf-access-client-id";
pub const CLIENT_SECRET_HEADER: &str = "cf-access-client-secret";
/// The single header's value is JSON; longer values are refused unread.
const MAX_SINGLE_HEADER_BYTES: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SingleHeader {
    #[serde(rename = "cf-access-client-id")]
    client_id: String,
    #[serde(rename = "cf-access-client-secret")]
    client_secret: String,
}

/// Reads the credentials a request presents: the `CF-Access-Client-Id` and
/// `CF-Access-Client-Secret` headers, or, when the application names one,
/// a single header whose value is JSON
/// `{"cf-access-client-id": …, "cf-access-client-secret": …}`. `values`
/// returns every value of a header (names are lower case). `Ok(None)` when
/// the request presents none; a half, a repeated header or both styles at
/// once are refused.
pub fn read_credentials<'h>(
    values: impl Fn(&str) -> Vec<&'h [u8]>,
    single_header: Option<&str>,
) -> Result<Option<Credentials>, Refusal> {
    let ids = values(CLIENT_ID_HEADER);
    let secrets = values(CLIENT_SECRET_HEADER);
    let single = match single_header {
        Some(name) => values(&name.to_ascii_lowercase()),
        None => Vec::new(),
    };
    let pair_sent = !ids.is_empty() || !secrets.is_empty();
    if pair_sent && !single.is_empty() {
        return Err(Refusal::Malformed("credentials sent in both header styles"));
    }
    if !single.is_empty() {
        let [value] = single.as_slice() else {
            return Err(Refusal::Malformed("the credentials header is repeated"));
        };
        if value.len() > MAX_SINGLE_HEADER_BYTES {
            return Err(Refusal::Malformed("the credentials header is too long"));
        }
        let parsed: SingleHeader = serde_json::from_slice(value)
            .map_err(|_| Refusal::Malformed("the credentials header is not the expected JSON"))?;
        return Credentials::new(&parsed.client_id, &parsed.client_secret).map(Some);
    }
    match (ids.as_slice(), secrets.as_slice()) {
        ([], []) => Ok(None),
        ([id], [secret]) => {
            let text = |bytes: &[u8]| {
                std::str::from_utf8(bytes)
                    .map(str::to_string)
                    .map_err(|_| Refusal::Malformed("credential headers must be text"))
            };
            Credentials::new(&text(id)?, &text(secret)?).map(Some)
        }
        ([_], []) | ([], [_]) => Err(Refusal::Malformed(
            "both CF-Access-Client-Id and CF-Access-Client-Secret are needed",
        )),
        _ => Err(Refusal::Malformed("a credential header is repeated")),
    }
}

impl StoredServiceToken {
    /// Whether `presented` opens this token at `now`. Both hashes are
    /// compared in constant time, whatever the outcome of the first.
    pub fn verify(&self, presented: &Credentials, now: Timestamp) -> Result<(), Refusal> {
        let hash = SecretHash::of(&presented.secret);
        let current = self.secret_hash.matches(&hash);
        let previous = self
            .previous_secret_hash
            .as_ref()
            .is_some_and(|old| old.matches(&hash))
            && self
                .token
                .previous_client_secret_expires_at
                .is_some_and(|until| now < until);
        if !(current || previous) {
            return Err(Refusal::WrongSecret);
        }
        if !self.token.enabled {
            return Err(Refusal::Disabled);
        }
        if self.token.expires_at.is_some_and(|at| now >= at) {
            return Err(Refusal::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(now: Timestamp) -> (StoredServiceToken, String) {
        let new = NewServiceToken {
            account_id: AccountId::generate(),
            name: "ci".into(),
            duration: DEFAULT_DURATION.into(),
            expires_at: Some(now.plus_seconds(3600)),
            enabled: true,
            client_secret_version: 1,
        };
        StoredServiceToken::issue(new, now)
    }

    fn creds(token: &StoredServiceToken, secret: &str) -> Credentials {
        Credentials::new(&token.token.client_id, secret).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn minted_values_have_cloudflare_shapes() {
        let id = new_client_id();
        assert!(is_client_id(&id) && id.len() == 39, "{id}");
        let secret = mint_client_secret();
        assert!(secret.value.starts_with("cfast_"));
        assert_eq!(secret.value.len(), 6 + 40 + 8);
        assert!(secret.value[6..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(secret.value, mint_client_secret().value);
        assert!(secret.hash.matches(&SecretHash::of(&secret.value)));
    }

    #[test]
    fn current_secret_opens_and_others_do_not() {
        let now = Timestamp::from_micros(1_800_000_000_000_000);
        let (token, secret) = stored(now);
        assert_eq!(token.verify(&creds(&token, &secret), now), Ok(()));
        let other = mint_client_secret().value;
        assert_eq!(
            token.verify(&creds(&token, &other), now),
            Err(Refusal::WrongSecret)
        );
    }

    #[test]
    fn previous_secret_only_within_its_grace_period() {
        let now = Timestamp::from_micros(1_800_000_000_000_000);
        let (mut token, old) = stored(now);
        let new = mint_client_secret();
        token.previous_secret_hash = Some(std::mem::replace(&mut token.secret_hash, new.hash));
        token.token.previous_client_secret_expires_at = Some(now.plus_seconds(60));
        assert_eq!(token.verify(&creds(&token, &old), now), Ok(()));
        assert_eq!(token.verify(&creds(&token, &new.value), now), Ok(()));
        let later = now.plus_seconds(60);
        assert_eq!(
            token.verify(&creds(&token, &old), later),
            Err(Refusal::WrongSecret)
        );
        assert_eq!(token.verify(&creds(&token, &new.value), later), Ok(()));
    }

    #[test]
    fn expired_and_disabled_tokens_are_refused() {
        let now = Timestamp::from_micros(1_800_000_000_000_000);
        let (mut token, secret) = stored(now);
        let at_expiry = now.plus_seconds(3600);
        assert_eq!(
            token.verify(&creds(&token, &secret), at_expiry),
            Err(Refusal::Expired)
        );
        token.token.expires_at = None;
        assert_eq!(token.verify(&creds(&token, &secret), at_expiry), Ok(()));
        token.token.enabled = false;
        assert_eq!(
            token.verify(&creds(&token, &secret), now),
            Err(Refusal::Disabled)
        );
    }

    type Header<'h> = (&'h str, &'h str);

    fn headers<'h>(pairs: &'h [(&'h str, &'h str)]) -> impl Fn(&str) -> Vec<&'h [u8]> {
        move |name: &str| {
            pairs
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_bytes())
                .collect()
        }
    }

    #[test]
    fn credentials_from_either_header_style() {
        let id = new_client_id();
        let pair = [
            ("CF-Access-Client-Id", id.as_str()),
            ("CF-Access-Client-Secret", "s3cret"),
        ];
        let read = read_credentials(headers(&pair), None);
        assert!(matches!(read, Ok(Some(ref c)) if c.client_id == id));

        let json = serde_json::json!({"cf-access-client-id": id, "cf-access-client-secret": "s"})
            .to_string();
        let single = [("Authorization", json.as_str())];
        let read = read_credentials(headers(&single), Some("Authorization"));
        assert!(matches!(read, Ok(Some(ref c)) if c.client_id == id));
        assert!(matches!(read_credentials(headers(&single), None), Ok(None)));
        assert!(matches!(read_credentials(headers(&[]), None), Ok(None)));
    }

    #[test]
    fn incomplete_repeated_oversized_or_mixed_credentials_are_refused() {
        let id = new_client_id();
        let json = serde_json::json!({"cf-access-client-id": id, "cf-access-client-secret": "s"})
            .to_string();
        let long = "x".repeat(MAX_SECRET_CHARS + 1);
        let cases: Vec<(Vec<Header>, Option<&str>)> = vec![
            (vec![("cf-access-client-id", id.as_str())], None),
            (vec![("cf-access-client-secret", "s")], None),
            (
                vec![
                    ("cf-access-client-id", id.as_str()),
                    ("cf-access-client-id", id.as_str()),
                    ("cf-access-client-secret", "s"),
                ],
                None,
            ),
            (
                vec![
                    ("cf-access-client-id", id.as_str()),
                    ("cf-access-client-secret", long.as_str()),
                ],
                None,
            ),
            (
                vec![
                    ("cf-access-client-id", id.as_str()),
                    ("cf-access-client-secret", "s"),
                    ("x-creds", json.as_str()),
                ],
                Some("X-Creds"),
            ),
            (vec![("x-creds", "{not json")], Some("x-creds")),
            (
                vec![("x-creds", json.as_str()), ("x-creds", json.as_str())],
                Some("x-creds"),
            ),
        ];
        for (pairs, single) in &cases {
            let read = read_credentials(headers(pairs), *single);
            assert!(
                matches!(read, Err(Refusal::Malformed(_))),
                "{pairs:?}: {read:?}"
            );
        }
        let foreign = [
            (
                "cf-access-client-id",
                "88bf3b6d86161464f6509f7219099e57.access.example.com",
            ),
            ("cf-access-client-secret", "s"),
        ];
        assert!(matches!(
            read_credentials(headers(&foreign), None),
            Err(Refusal::UnknownClientId)
        ));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("forever"), Ok(None));
        assert_eq!(parse_duration("24h"), Ok(Some(Duration::from_secs(86_400))));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("1y").is_err());
        let now = Timestamp::from_micros(0);
        assert_eq!(expiry(now, None), None);
        assert_eq!(
            expiry(now, Some(Duration::from_secs(10))),
            Some(now.plus_seconds(10))
        );
    }
}
