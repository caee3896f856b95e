//! Server configuration: one `Config`, filled from defaults, then environment
//! variables, then command-line flags (clap applies the last two).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

/// The environment variables accessd reads; anything else with the prefix is a typo.
pub const KNOWN_ENV: &[&str] = &[
    "ACCESSD_LISTEN",
    "ACCESSD_DATABASE_URL",
    "ACCESSD_ADMIN_TOKEN",
    "ACCESSD_PUBLIC_URL",
    "ACCESSD_SMTP_URL",
    "ACCESSD_MAIL_FROM",
    "ACCESSD_OUTBOX",
    "ACCESSD_COUNTRY_HEADER",
    "ACCESSD_LOG",
    "ACCESSD_SESSION_RETENTION",
    "ACCESSD_FAILED_LOGIN_RETENTION",
    "ACCESSD_PURGE_INTERVAL",
    "ACCESSD_TRUSTED_PROXY",
    "ACCESSD_CODES_PER_CLIENT",
    "ACCESSD_CODES_PER_APPLICATION",
    "ACCESSD_SECRET_KEY_FILE",
    "ACCESSD_HEADER_TIMEOUT",
    "ACCESSD_BODY_TIMEOUT",
    "ACCESSD_IDLE_TIMEOUT",
    "ACCESSD_MAX_CONNECTIONS",
    "ACCESSD_MAX_CONNECTIONS_PER_CLIENT",
    "ACCESSD_SHUTDOWN_GRACE",
];

pub const DEFAULT_DATABASE_URL: &str = "sqlite://accessd.db";

/// Where the data lives; shared by every subcommand.
#[derive(Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// `sqlite://PATH` (created if missing) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long = "database", env = "ACCESSD_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub url: String,
}

#[derive(Args, Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port and prints it.
    #[arg(long, env = "ACCESSD_LISTEN", default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// The admin token. When unset, one is generated on first start and printed once.
    #[arg(long, env = "ACCESSD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,

    /// The URL users and identity providers reach accessd at (login pages,
    /// callbacks, SCIM base URLs). Defaults to http:// and the bound address.
    #[arg(long, env = "ACCESSD_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,

    #[command(flatten)]
    pub mail: MailArgs,

    /// A request header, set by a proxy you trust, that carries the client's
    /// country code (for example `CF-IPCountry`); recorded at login.
    #[arg(long, env = "ACCESSD_COUNTRY_HEADER")]
    pub country_header: Option<String>,

    /// The key that seals signing keys and identity-provider secrets in the
    /// database: 32 bytes as 64 hex digits, made on first start. Default:
    /// the SQLite file's path plus `.key`, or `accessd-secret.key` in the
    /// working directory for PostgreSQL. Back it up with the database.
    #[arg(long, env = "ACCESSD_SECRET_KEY_FILE")]
    pub secret_key_file: Option<std::path::PathBuf>,

    /// A reverse proxy (an address or a CIDR) whose `X-Forwarded-For` is
    /// believed; repeat the flag, or separate with commas in the variable.
    /// Other peers' forwarding headers are ignored.
    #[arg(long = "trusted-proxy", env = "ACCESSD_TRUSTED_PROXY", value_delimiter = ',', value_parser = parse_network)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    #[command(flatten)]
    pub retention: Retention,

    #[command(flatten)]
    pub code_limits: CodeLimits,

    #[command(flatten)]
    pub connections: Connections,
}

/// How many sign-in codes may be mailed per ten minutes, beyond the fixed
/// five per address.
#[derive(Args, Debug, Clone, Copy)]
pub struct CodeLimits {
    /// Codes one client (an IPv4 address or an IPv6 /64) may ask for per ten
    /// minutes, whatever the addresses. Behind a proxy every client is the
    /// proxy: raise it there.
    #[arg(long, env = "ACCESSD_CODES_PER_CLIENT", default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..))]
    pub per_client: i64,

    /// Codes one application may cause to be mailed per ten minutes.
    #[arg(long, env = "ACCESSD_CODES_PER_APPLICATION", default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..))]
    pub per_application: i64,
}

impl Default for CodeLimits {
    fn default() -> Self {
        Self {
            per_client: 30,
            per_application: 500,
        }
    }
}

/// How long a client may take, and how many may be connected at once.
#[derive(Args, Debug, Clone, Copy)]
pub struct Connections {
    /// Time allowed to send a request's line and headers.
    #[arg(long, env = "ACCESSD_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// Time allowed to send a request's body, from the end of its headers.
    #[arg(long, env = "ACCESSD_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_timeout: Duration,

    /// How long a kept-alive connection may wait for its next request.
    #[arg(long, env = "ACCESSD_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Connections served at once; further ones wait in the listen queue,
    /// and connections idle between requests are closed to make room.
    #[arg(long, env = "ACCESSD_MAX_CONNECTIONS", default_value = "1024", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Connections one client (an IPv4 address or an IPv6 /64) may hold at
    /// once; further ones are closed at once. Behind a proxy every client is
    /// the proxy: raise it there.
    #[arg(long, env = "ACCESSD_MAX_CONNECTIONS_PER_CLIENT", default_value = "64", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_client: u32,

    /// On SIGTERM or SIGINT, how long requests in flight may take to finish
    /// before their connections are closed.
    #[arg(long, env = "ACCESSD_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

/// Where sign-in codes go.
#[derive(Args, Debug, Clone)]
pub struct MailArgs {
    /// `smtp://[user:pass@]host[:port]` (STARTTLS when offered) or `smtps://…`.
    /// Unset: messages are written to the outbox folder instead.
    #[arg(long, env = "ACCESSD_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Sender of sign-in codes.
    #[arg(
        long,
        env = "ACCESSD_MAIL_FROM",
        default_value = "accessd <no-reply@accessd.localhost>"
    )]
    pub mail_from: String,

    /// Folder for `.eml` files when no SMTP server is set.
    #[arg(long, env = "ACCESSD_OUTBOX", default_value = "accessd-outbox")]
    pub outbox: std::path::PathBuf,
}

fn parse_network(raw: &str) -> Result<ipnet::IpNet, String> {
    let raw = raw.trim();
    raw.parse::<ipnet::IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| format!("{raw:?} is not an address or a CIDR such as 10.0.0.0/8"))
}

fn parse_public_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim_end_matches('/');
    let scheme_ok = trimmed.starts_with("http://") || trimmed.starts_with("https://");
    let host = trimmed.split_once("://").map_or("", |(_, rest)| rest);
    if !scheme_ok || host.is_empty() || host.contains(char::is_whitespace) {
        return Err(
            "must be an http:// or https:// URL such as https://access.example.com".to_string(),
        );
    }
    Ok(trimmed.to_string())
}

/// How long records outlive their use.
#[derive(Args, Debug, Clone, Copy)]
pub struct Retention {
    /// How long an expired or revoked session stays readable (Go-style duration).
    #[arg(long, env = "ACCESSD_SESSION_RETENTION", default_value = "168h", value_parser = parse_duration)]
    pub session_retention: Duration,

    /// How long a failed login is kept; it is its `expiration`.
    #[arg(long, env = "ACCESSD_FAILED_LOGIN_RETENTION", default_value = "720h", value_parser = parse_duration)]
    pub failed_login_retention: Duration,

    /// How often the purge of expired records runs.
    #[arg(long, env = "ACCESSD_PURGE_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    pub purge_interval: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            session_retention: Duration::from_secs(168 * 3600),
            failed_login_retention: Duration::from_secs(720 * 3600),
            purge_interval: Duration::from_secs(60),
        }
    }
}

fn parse_duration(raw: &str) -> Result<Duration, String> {
    let duration = crate::domain::duration::parse(raw)?;
    if duration.is_zero() {
        return Err("must be longer than zero".to_string());
    }
    Ok(duration)
}

/// A secret from configuration: never shown by `Debug`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if crate::domain::secret::has_token_shape(raw) {
            Ok(Self(raw.to_string()))
        } else {
            Err("an admin token must be 40 characters of A-Z a-z 0-9 - _, \
                 or cfut_ followed by at least 41 letters and digits \
                 (the shapes Cloudflare SDK users send as Bearer tokens)"
                .to_string())
        }
    }
}

/// Names of environment variables that look like ours but are not.
pub fn unknown_env_vars() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with("ACCESSD_") && !KNOWN_ENV.contains(&name.as_str()))
        .collect()
}
