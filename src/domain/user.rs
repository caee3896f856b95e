//! Access users: the people who sign in to applications of an account.

pub use super::ids::{SeatId, UserId};
use super::{AccountId, Timestamp};

pub const MAX_NAME_CHARS: usize = 256;
const MAX_EMAIL_CHARS: usize = 254;

/// An e-mail address as the user gave it, with its comparison key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    given: String,
    key: String,
}

impl Email {
    /// Checks the shape `local@domain.tld` without guessing at deliverability.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() {
            return Err("email must not be empty");
        }
        if raw.chars().count() > MAX_EMAIL_CHARS {
            return Err("email must be at most 254 characters");
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("email must not contain spaces or control characters");
        }
        let Some((local, domain)) = raw.rsplit_once('@') else {
            return Err("email must look like name@example.com");
        };
        if local.is_empty() || local.len() > 64 || local.contains('@') || !is_domain_name(domain) {
            return Err("email must look like name@example.com");
        }
        if !is_dot_atom(local) {
            return Err(
                "the part before @ may hold letters, digits, dots (not first, last or doubled) \
                 and !#$%&'*+-/=?^_`{|}~ only; quoted and escaped forms are not accepted",
            );
        }
        // UTS 46 maps some letters to several characters (a presentation
        // form may become a space and a mark), so the comparison form is
        // checked as well: it must be a domain name and must not change
        // when folded again, or two spellings could name one user.
        let key = Self::key_of(raw);
        let key_domain = key.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        if !is_domain_name(key_domain) || Self::key_of(&key) != key {
            return Err("the domain after @ must be a domain name in letters, digits and hyphens");
        }
        Ok(Self {
            given: raw.to_string(),
            key,
        })
    }

    /// The form used to compare addresses: case does not make a different
    /// user, in any script, and neither does writing an international
    /// domain as punycode (`xn--…`) or in its own letters.
    pub fn key_of(raw: &str) -> String {
        let raw = raw.trim();
        match raw.rsplit_once('@') {
            Some((local, domain)) => format!("{}@{}", local.to_lowercase(), domain_key(domain)),
            None => raw.to_lowercase(),
        }
    }

    /// Rebuilds an address read back from storage, where it was validated on the way in.
    pub fn from_stored(given: String) -> Self {
        let key = Self::key_of(&given);
        Self { given, key }
    }

    pub fn as_str(&self) -> &str {
        &self.given
    }

    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The comparison form of a domain name: lowercase, in Unicode letters
/// (UTS 46), so `XN--BCHER-KVA.de` and `Bücher.de` are one domain.
pub fn domain_key(domain: &str) -> String {
    let (unicode, outcome) = idna::domain_to_unicode(domain.trim());
    if outcome.is_ok() {
        unicode
    } else {
        domain.trim().to_lowercase()
    }
}

/// Whether `domain` is dot-separated labels of letters, digits and inner hyphens.
fn is_domain_name(domain: &str) -> bool {
    domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

/// Whether `local` is an RFC 5322 dot-atom (with the UTF-8 letters of RFC
/// 6531): what mail servers deliver as written. Quoted strings, escapes and
/// comments are refused, since a mailer would deliver `"fired"@corp.test`
/// to `fired@corp.test` while rules and keys saw another address.
fn is_dot_atom(local: &str) -> bool {
    let allowed = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c == '.' || allowed(c))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seat {
    pub id: SeatId,
    pub access: bool,
    pub gateway: bool,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessUser {
    pub id: UserId,
    pub account_id: AccountId,
    pub email: Email,
    pub name: Option<String>,
    pub seat: Seat,
    pub active_device_count: i64,
    pub last_successful_login: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl AccessUser {
    /// A user created by an administrator or at first sight: no seat until they log in.
    pub fn new(account_id: AccountId, email: Email, name: Option<String>, now: Timestamp) -> Self {
        Self {
            id: UserId::generate(),
            account_id,
            email,
            name,
            seat: Seat {
                id: SeatId::generate(),
                access: false,
                gateway: false,
                updated_at: now,
            },
            active_device_count: 0,
            last_successful_login: None,
            created_at: now,
            updated_at: now,
        }
    }
}

pub fn parse_name(raw: &str) -> Result<String, &'static str> {
    if raw.chars().count() > MAX_NAME_CHARS {
        Err("name must be at most 256 characters")
    } else if raw.chars().any(char::is_control) {
        Err("name must not contain control characters")
    } else {
        Ok(raw.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_compare_without_case_and_keep_their_spelling() {
        let email = Email::parse("Jane.Doe@Example.COM").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(email.as_str(), "Jane.Doe@Example.COM");
        assert_eq!(email.key(), "jane.doe@example.com");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "jane",
            "jane@",
            "@example.com",
            "jane@example",
            "ja ne@example.com",
            "jane@exa_mple.com",
            "jane@-x.com",
            "a@\u{fe72}.aa",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Email::parse("jane+tag@sub.example.co.uk").is_ok());
        assert!(Email::parse("jürgen@bücher.de").is_ok());
        for disguised in [
            "\"fired\"@corp.test",
            "fi\\red@corp.test",
            "fired(comment)@corp.test",
            ".fired@corp.test",
            "fi..red@corp.test",
            "fired.@corp.test",
            "<fired>@corp.test",
        ] {
            assert!(Email::parse(disguised).is_err(), "{disguised:?}");
        }
    }

    #[test]
    fn international_domains_compare_in_either_spelling() {
        let unicode = Email::parse("Jürgen@Bücher.de").map(|e| e.key().to_string());
        let punycode = Email::parse("jürgen@XN--BCHER-KVA.de").map(|e| e.key().to_string());
        assert_eq!(unicode, punycode);
        assert_eq!(unicode.as_deref(), Ok("jürgen@bücher.de"));
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        fn address() -> impl Strategy<Value = String> {
            let part = prop_oneof![
                "[a-zA-Z0-9._+-]{1,20}",
                "[äÄöÖßİıЖжΣσ]{1,5}",
                any::<String>()
            ];
            (part.clone(), part, "[a-zA-Z]{2,6}")
                .prop_map(|(local, domain, tld)| format!("{local}@{domain}.{tld}"))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Any text is an address or a refusal; an accepted address is
            /// bounded and clean, and its key is its case-folded self, folded
            /// the same way every time.
            #[test]
            fn any_text_parses_or_is_refused(raw in prop_oneof![address(), any::<String>()]) {
                if let Ok(email) = Email::parse(&raw) {
                    prop_assert!(email.as_str().chars().count() <= MAX_EMAIL_CHARS);
                    prop_assert!(!email.as_str().chars().any(|c| c.is_whitespace() || c.is_control()));
                    prop_assert_eq!(email.key(), Email::key_of(email.as_str()));
                    prop_assert_eq!(Email::key_of(email.key()), email.key());
                    let local = email.as_str().rsplit_once('@').map(|(l, _)| l).unwrap_or_default();
                    prop_assert!(!local.contains(['"', '\\', '(', ')', '<', '>', ',', ';', ':', '[', ']']));
                }
            }

            /// Spellings that differ only in case share a key, in any script.
            #[test]
            fn case_never_makes_another_address(raw in address()) {
                let lower = raw.to_lowercase();
                if let (Ok(a), Ok(b)) = (Email::parse(&raw), Email::parse(&lower)) {
                    prop_assert_eq!(a.key(), b.key());
                }
            }
        }
    }

    #[test]
    fn user_ids_are_lowercase_hyphenated_uuids() {
        let id = UserId::parse("F174E90A-FAFE-4643-BBBC-4A0ED4FC8415").map(|i| i.to_string());
        assert_eq!(id.as_deref(), Some("f174e90a-fafe-4643-bbbc-4a0ed4fc8415"));
        assert!(UserId::parse("f174e90afafe4643bbbc4a0ed4fc8415").is_none());
        assert!(UserId::parse("not-a-uuid").is_none());
    }
}
