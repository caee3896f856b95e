//! The command line: `serve`, `migrate` and `admin-token`.

pub mod admin;
pub mod generate;

use std::io::Write;

use clap::{Parser, Subcommand};

use crate::BoxError;
use crate::config::{self, Config, DatabaseArgs};
use crate::store::Store;

#[derive(Parser, Debug)]
#[command(
    name = "accessd",
    version,
    about = "Zero Trust Access users, self-hosted, on the Cloudflare v4 API"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (migrates the database first).
    Serve(Box<Config>),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Replace the admin token with a new one and print it (offline, against the database).
    AdminToken(DatabaseArgs),
    /// Generate users with sessions, identities and failed logins (test and benchmark data).
    Generate(generate::GenerateArgs),
}

/// Prints a line on standard output at once, for people and scripts that
/// wait for it (the listening address, a secret shown once).
pub fn announce(line: &str) {
    let mut out = std::io::stdout().lock();
    // Nothing useful can be done when stdout is gone; the server keeps running.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// A new token for a database that does not exist would go unused: a
/// mistyped SQLite path is refused instead of becoming a new, empty database.
fn refuse_missing_sqlite_file(url: &str) -> Result<(), BoxError> {
    use std::str::FromStr;
    if !url.starts_with("sqlite:") {
        return Ok(());
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
    let path = options.get_filename();
    if path.exists() {
        return Ok(());
    }
    Err(format!(
        "no database at {}: give the --database the server uses (`accessd serve` creates it)",
        path.display()
    )
    .into())
}

pub async fn run(cli: Cli) -> Result<(), BoxError> {
    for name in config::unknown_env_vars() {
        tracing::warn!(variable = %name, "unknown ACCESSD_ environment variable; is it misspelled?");
    }
    match cli.command {
        Command::Serve(config) => crate::serve(*config).await,
        Command::Migrate(database) => {
            let store = Store::connect(&database.url).await?;
            store.migrate().await?;
            store.close().await;
            announce("migrations applied");
            Ok(())
        }
        Command::Generate(args) => generate::run(args).await,
        Command::AdminToken(database) => {
            refuse_missing_sqlite_file(&database.url)?;
            let store = Store::connect(&database.url).await?;
            store.migrate().await?;
            let secret = admin::rotate_admin_token(&store).await?;
            store.close().await;
            announce(&format!(
                "new admin token (shown once; the old one no longer works): {secret}"
            ));
            Ok(())
        }
    }
}
