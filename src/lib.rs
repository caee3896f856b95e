//! accessd: a self-hosted Zero Trust Access user service that speaks the
//! Cloudflare v4 API.
//!
//! `domain` holds the rules, `store` keeps them durable on SQLite or
//! PostgreSQL, `auth` decides who may do what, `api` shapes it all as the
//! Cloudflare SDKs expect, and `cli` is the command line around [`serve`].

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod gate;
pub mod key_maintenance;
pub mod listing;
pub mod login;
pub mod mail;
pub mod private_files;
pub mod retention;
pub mod scim;
pub mod secret_key;
pub mod server;
pub mod store;

use tokio::net::TcpListener;

use crate::app::AppState;
use crate::config::Config;
use crate::store::Store;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Opens the database, migrates it, unlocks its sealed secrets, makes sure
/// an admin token exists, and serves until SIGINT or SIGTERM; requests in
/// flight then get the shutdown grace period to finish.
pub async fn serve(config: Config) -> Result<(), BoxError> {
    // The address first: a server that cannot listen must not create a
    // database or print an admin token nobody will be able to use.
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let store = Store::connect(&config.database.url).await?;
    store.migrate().await?;
    let key_file = config
        .secret_key_file
        .clone()
        .unwrap_or_else(|| secret_key::default_path(&config.database.url));
    let store = secret_key::unlock(store, &key_file).await?;
    cli::admin::ensure_admin_token(&store, config.admin_token.as_ref()).await?;

    let address = listener.local_addr()?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{address}"));
    let mailer = mail::Mailer::new(
        config.mail.smtp_url.as_deref(),
        config.mail.outbox.clone(),
        &config.mail.mail_from,
    )?;
    let mut state = app::Shared::new(store.clone(), &public_url, config.retention, mailer);
    state.country_header = config.country_header.as_deref().map(Into::into);
    state.code_limits = config.code_limits;
    state.trusted_proxies = config.trusted_proxies.clone().into();
    let state = AppState::from(state);
    state.gate.sync(&store).await?;
    let gate_watchers = gate::watch::spawn(state.gate.clone(), store.clone());
    let app = app::router(state);
    let purger = retention::spawn(store.clone(), config.retention);
    let key_keeper = key_maintenance::spawn(store.clone(), config.retention.purge_interval);
    tracing::info!(backend = store.backend_name(), %address, "started");
    cli::announce(&format!("accessd listening on http://{address}"));

    server::serve(listener, app, config.connections, shutdown_signal()).await;
    purger.abort();
    key_keeper.abort();
    for watcher in gate_watchers {
        watcher.abort();
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down; finishing requests in flight");
}
