//! The HTTP/1 server around the router: every connection has header, body
//! and idle timeouts, at most `max_connections` are served at once (more
//! wait in the listen queue), and shutdown ends within the grace period
//! whatever clients do.

mod watch;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch as signal};
use tokio::task::JoinSet;

use crate::config::Connections;
use watch::{Activity, DeadlineBody, GuardedBody, WatchedIo};

/// Serves `router` on `listener` until `shutdown` completes, then lets
/// requests in flight finish for at most the grace period.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Connections,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections as usize));
    let (stop_sender, stop) = signal::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &permits) => accepted,
            // Reap finished connections so the set does not grow forever.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Some((stream, peer, permit)) = accepted else {
            continue;
        };
        let router = router.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            serve_connection(stream, peer, router, limits, stop).await;
            drop(permit);
        });
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

/// The next connection, once a slot is free; `None` after a failed accept.
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> Option<(TcpStream, SocketAddr, tokio::sync::OwnedSemaphorePermit)> {
    let permit = Arc::clone(permits).acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, peer)) => Some((stream, peer, permit)),
        Err(err) => {
            // Usually out of file descriptors: pause instead of spinning.
            tracing::warn!(%err, "accept failed");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            None
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Connections,
    mut stop: signal::Receiver<bool>,
) {
    let activity = Activity::new(limits.header_timeout, limits.idle_timeout);
    let io = TokioIo::new(WatchedIo::new(stream, Arc::clone(&activity)));
    let service_activity = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let busy = service_activity.request_started();
        let mut router = router.clone();
        let mut request =
            request.map(|body| Body::new(DeadlineBody::new(body, limits.body_timeout)));
        request.extensions_mut().insert(ConnectInfo(peer));
        async move {
            let response = tower_service::Service::call(&mut router, request).await?;
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
        }
    }
}
