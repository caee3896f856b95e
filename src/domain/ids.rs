//! Identifiers. Each one is built only by parsing or generating, so an invalid
//! id cannot exist past the edge of the program.

use std::fmt;

use rand::RngCore;

/// Parses 32 hexadecimal characters, accepting upper case and returning lower case.
fn parse_hex32(raw: &str) -> Option<String> {
    (raw.len() == 32 && raw.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| raw.to_ascii_lowercase())
}

fn random_hex32() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

macro_rules! hex32_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Option<Self> {
                parse_hex32(raw).map(Self)
            }

            pub fn generate() -> Self {
                Self(random_hex32())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&raw).ok_or_else(|| {
                    serde::de::Error::custom("expected an identifier of 32 hexadecimal characters")
                })
            }
        }
    };
}

hex32_id!(
    /// An account: 32 lowercase hex characters, as Cloudflare's account tags.
    AccountId
);
hex32_id!(
    /// An API token's public identifier (not its secret).
    TokenId
);
hex32_id!(
    /// One policy inside an API token.
    PolicyId
);

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Accepts any case and hyphenated form; always returns lower case.
            pub fn parse(raw: &str) -> Option<Self> {
                uuid::Uuid::try_parse(raw)
                    .ok()
                    .filter(|_| raw.len() == 36)
                    .map(|u| Self(u.hyphenated().to_string()))
            }

            pub fn generate() -> Self {
                Self(uuid::Uuid::new_v4().hyphenated().to_string())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&raw).ok_or_else(|| serde::de::Error::custom("expected a UUID"))
            }
        }
    };
}

uuid_id!(
    /// An Access user's `id` (and `uid`).
    UserId
);
uuid_id!(
    /// A user's Zero Trust seat, addressed by `PATCH /access/seats`.
    SeatId
);
uuid_id!(
    /// A reusable Access policy.
    AccessPolicyId
);
uuid_id!(
    /// An Access application.
    AppId
);
uuid_id!(
    /// An identity provider.
    IdpId
);
uuid_id!(
    /// An Access service token's `id`, as `service_token` rules name it.
    ServiceTokenId
);
uuid_id!(
    /// An Access group, as `group` rules name it.
    AccessGroupId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_32_hex_and_lowercased() {
        let id = AccountId::parse("023E105F4ECEF8AD9CA31A8372D0C353").map(|id| id.to_string());
        assert_eq!(id.as_deref(), Some("023e105f4ecef8ad9ca31a8372d0c353"));
        assert!(AccountId::parse("023e105f4ecef8ad9ca31a8372d0c35").is_none());
        assert!(AccountId::parse("023e105f4ecef8ad9ca31a8372d0c35g").is_none());
        assert!(AccountId::parse("jdoe@example.com").is_none());
    }

    #[test]
    fn generated_ids_parse_back() {
        let id = TokenId::generate();
        assert_eq!(TokenId::parse(id.as_str()), Some(id));
    }
}
