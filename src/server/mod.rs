//! The HTTP/1 server around the router: every connection has header, body
//! and idle timeouts, at most `max_connections` are served at once (more
//! wait in the listen queue, while connections idle between requests are
//! closed to make room), one client's connections beyond
//! `max_connections_per_client` are closed at once, and shutdown ends
//! within the grace period whatever clients do.

mod admission;
mod watch;

use axum::response::IntoResponse;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch as signal;
use tokio::task::JoinSet;

use crate::config::Connections;
use admission::{Admission, Ticket};
use watch::{Activity, DeadlineBody, GuardedBody, WatchedIo};

/// A connection accepted and counted against its client, waiting for a slot.
struct Accepted {
    stream: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
}

/// Serves `router` on `listener` until `shutdown` completes, then lets
/// requests in flight finish for at most the grace period.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Connections,
    shutdown: impl Future<Output = ()>,
) {
    let admission = Admission::new(limits.max_connections, limits.max_connections_per_client);
    let (stop_sender, stop) = signal::channel(false);
    let mut connections = JoinSet::new();
    // Kept outside the select so that reaping a finished connection, which
    // restarts the select, does not drop a connection waiting for a slot.
    let mut waiting: Option<Accepted> = None;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept(), if waiting.is_none() => {
                waiting = admit(accepted, &admission).await;
            }
            Some(permit) = admission.slot(), if waiting.is_some() => {
                let Some(accepted) = waiting.take() else { continue };
                let router = router.clone();
                let stop = stop.clone();
                let idle_signal = admission.idle_signal();
                connections.spawn(async move {
                    serve_connection(accepted, router, limits, idle_signal, stop).await;
                    drop(permit);
                });
            }
            // Reap finished connections so the set does not grow forever.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop_sender.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            remaining = connections.len(),
            "shutdown grace period over; closing connections still open"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

/// Counts an accepted connection against its client; one beyond the
/// client's cap is closed at once, not queued.
async fn admit(
    accepted: std::io::Result<(TcpStream, SocketAddr)>,
    admission: &Arc<Admission>,
) -> Option<Accepted> {
    let (stream, peer) = match accepted {
        Ok(accepted) => accepted,
        Err(err) => {
            // Usually out of file descriptors: pause instead of spinning.
            tracing::warn!(%err, "accept failed");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            return None;
        }
    };
    let Some(ticket) = admission.admit(peer.ip()) else {
        tracing::debug!(%peer, "closing a connection beyond the client's cap");
        return None;
    };
    Some(Accepted {
        stream,
        peer,
        ticket,
    })
}

async fn serve_connection(
    accepted: Accepted,
    router: Router,
    limits: Connections,
    idle_signal: Arc<tokio::sync::Notify>,
    mut stop: signal::Receiver<bool>,
) {
    let Accepted {
        stream,
        peer,
        ticket,
    } = accepted;
    // The head's deadline counts from here, not from a wait for a slot.
    let activity = Activity::new(limits.header_timeout, limits.idle_timeout, idle_signal);
    ticket.track(&activity);
    let io = TokioIo::new(WatchedIo::new(stream, Arc::clone(&activity)));
    let service_activity = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let busy = service_activity.request_started();
        let mut router = router.clone();
        let mut request =
            request.map(|body| Body::new(DeadlineBody::new(body, limits.body_timeout)));
        request.extensions_mut().insert(ConnectInfo(peer));
        async move {
            // The handler runs in a task of its own: a client that goes away
            // drops this future, which must not cut a database transaction
            // off halfway and hand its connection back still inside it.
            let handling =
                tokio::spawn(
                    async move { tower_service::Service::call(&mut router, request).await },
                );
            let response = match handling.await {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(err) => {
                    tracing::error!(%err, "request handler did not finish");
                    hyper::StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }
            };
            Ok::<_, Infallible>(response.map(|body| Body::new(GuardedBody::new(body, busy))))
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        // Our own watchdog times the head (hyper's timer would also cut idle keep-alives).
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%err, %peer, "connection ended with an error");
                }
                return;
            }
            () = activity.stalled() => {
                tracing::debug!(%peer, "closing a stalled connection");
                return;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
            () = activity.shed_requested(), if !stopping => {
                tracing::debug!(%peer, "closing an idle connection to make room");
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}
