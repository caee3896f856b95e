//! Self-hosted Access applications: a hostname (and path) that Access protects.

use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::{AccessPolicyId, AccountId, AppId, IdpId, Timestamp};

/// How the application's cookie and login behave; stored as one document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppSettings {
    pub allowed_idps: Vec<IdpId>,
    pub auto_redirect_to_identity: bool,
    pub app_launcher_visible: bool,
    pub http_only_cookie_attribute: bool,
    pub same_site_cookie_attribute: Option<String>,
    pub path_cookie_attribute: bool,
    pub enable_binding_cookie: bool,
    pub custom_deny_message: Option<String>,
    pub custom_deny_url: Option<String>,
    /// Further hostnames of the application, beyond `domain`.
    pub self_hosted_domains: Vec<String>,
    pub tags: Vec<String>,
}

impl Default for AppSettings {
    fn default() -> Self {
        Self {
            allowed_idps: Vec::new(),
            auto_redirect_to_identity: false,
            app_launcher_visible: true,
            http_only_cookie_attribute: true,
            same_site_cookie_attribute: None,
            path_cookie_attribute: false,
            enable_binding_cookie: false,
            custom_deny_message: None,
            custom_deny_url: None,
            self_hosted_domains: Vec::new(),
            tags: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyLink {
    pub policy_id: AccessPolicyId,
    pub precedence: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessApp {
    pub id: AppId,
    pub account_id: AccountId,
    /// The audience tag: 64 hex characters, the `aud` of the application's tokens.
    pub aud: String,
    pub name: String,
    /// Hostname, optionally with a path: `wiki.example.com/admin`.
    pub domain: String,
    /// Go-style duration of the application token.
    pub session_duration: String,
    pub settings: AppSettings,
    pub policies: Vec<PolicyLink>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

pub fn new_aud() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A protected address: a hostname with an optional port and path, no scheme.
pub fn parse_domain(raw: &str) -> Result<String, &'static str> {
    let domain = raw.trim().to_ascii_lowercase();
    if domain.contains("://") {
        return Err(
            "domain is a hostname and path without a scheme, such as wiki.example.com/admin",
        );
    }
    let (host_port, path) = domain
        .split_once('/')
        .map_or((domain.as_str(), ""), |(h, p)| (h, p));
    let host = host_port.rsplit_once(':').map_or(host_port, |(h, port)| {
        if port.parse::<u16>().is_ok() {
            h
        } else {
            host_port
        }
    });
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*')
        });
    let path = path.trim_end_matches('/');
    // `.`, `..` and empty segments would name one path in several spellings.
    let path_ok = path
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
        && (path.is_empty()
            || path
                .split('/')
                .all(|s| !s.is_empty() && s != "." && s != ".."));
    if host_ok && path_ok && !host.contains(char::is_whitespace) {
        // A default port is the host itself, as browsers send it in `Host`.
        let host_port = host_port
            .strip_suffix(":80")
            .or_else(|| host_port.strip_suffix(":443"))
            .unwrap_or(host_port);
        Ok(if path.is_empty() {
            host_port.to_string()
        } else {
            format!("{host_port}/{path}")
        })
    } else {
        Err("domain is a hostname and path without a scheme, such as wiki.example.com/admin")
    }
}

impl AccessApp {
    /// Every domain (hostname and optional path) the application claims:
    /// `domain` and the further self-hosted domains.
    pub fn domains(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.domain.as_str())
            .chain(self.settings.self_hosted_domains.iter().map(String::as_str))
    }

    /// Every hostname the application answers on.
    pub fn hostnames(&self) -> Vec<&str> {
        std::iter::once(self.domain.as_str())
            .chain(self.settings.self_hosted_domains.iter().map(String::as_str))
            .map(|d| d.split('/').next().unwrap_or(d))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert_eq!(
            parse_domain("Wiki.Example.com/Admin/"),
            Ok("wiki.example.com/admin".to_string())
        );
        assert_eq!(
            parse_domain("localhost:8080"),
            Ok("localhost:8080".to_string())
        );
        assert!(parse_domain("https://wiki.example.com").is_err());
        assert!(parse_domain("").is_err());
        assert!(parse_domain("wiki example.com").is_err());
        assert!(parse_domain("wiki.example.com/a?b").is_err());
    }

    #[test]
    fn one_domain_has_one_spelling() {
        for same in [
            "victim.test:80/admin",
            "victim.test:443/admin/",
            "VICTIM.test/admin",
        ] {
            assert_eq!(
                parse_domain(same),
                Ok("victim.test/admin".to_string()),
                "{same}"
            );
        }
        for odd in [
            "victim.test/./admin",
            "victim.test/a/../admin",
            "victim.test//admin",
        ] {
            assert!(parse_domain(odd).is_err(), "{odd}");
        }
    }

    #[test]
    fn auds_are_64_hex() {
        let aud = new_aud();
        assert_eq!(aud.len(), 64);
        assert!(aud.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
