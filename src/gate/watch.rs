//! Keeps a [`Gate`] in step with the database: a poll of the version
//! four times a second everywhere, and on PostgreSQL a listener that
//! forgets at once when another process (or this one) commits a change.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::Gate;
use crate::store::Store;

/// How often the version is read, whatever else tells of changes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Starts polling and, on PostgreSQL, listening. Abort the handles to stop.
pub fn spawn(gate: Arc<Gate>, store: Store) -> Vec<JoinHandle<()>> {
    let poller = {
        let (gate, store) = (gate.clone(), store.clone());
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(POLL_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(err) = gate.sync(&store).await {
                    tracing::warn!(%err, "cannot read the decision state's version; reading from the database meanwhile");
                }
            }
        })
    };
    // Apart from the poller, which may wait on the database for long.
    let watchdog = {
        let gate = gate.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(POLL_INTERVAL / 2);
            loop {
                ticks.tick().await;
                gate.expire();
            }
        })
    };
    vec![poller, watchdog, tokio::spawn(listen(gate, store))]
}

async fn listen(gate: Arc<Gate>, store: Store) {
    loop {
        let mut listener = match store.gate_listener().await {
            Ok(Some(listener)) => listener,
            // SQLite: one process, and it checks after each of its writes.
            Ok(None) => return,
            Err(err) => {
                tracing::warn!(%err, "cannot listen for decision-state changes; polling only");
                tokio::time::sleep(POLL_INTERVAL).await;
                continue;
            }
        };
        // Whatever happened before the listener was up is the poll's to see.
        gate.forget();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => gate.forget(),
                // The connection dropped; notifications may have been lost.
                Ok(None) => gate.forget(),
                Err(err) => {
                    tracing::warn!(%err, "lost the decision-state listener; reconnecting");
                    gate.forget();
                    break;
                }
            }
        }
    }
}
