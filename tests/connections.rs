//! Clients that stall: partial headers, dripping bodies, idle keep-alives,
//! more connections than allowed, and a shutdown while they hang on.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{ADMIN_TOKEN, Server, TestDb};

crate::on_each_backend!(
    partial_headers_are_cut_at_the_header_timeout,
    a_dripping_body_is_cut_at_the_body_timeout,
    an_idle_keep_alive_is_closed_at_the_idle_timeout,
    shutdown_ends_within_the_grace_period_despite_stuck_clients,
    connections_beyond_the_bound_wait_for_a_free_slot,
);

async fn start(db: &TestDb, settings: &[(&str, &str)]) -> Server {
    let mut env = vec![("ACCESSD_ADMIN_TOKEN", ADMIN_TOKEN)];
    env.extend_from_slice(settings);
    Server::start_with(db, &env).await
}

async fn connect(server: &Server) -> TcpStream {
    let address = server.base.trim_start_matches("http://");
    TcpStream::connect(address)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

/// Reads until the server closes the connection; returns what it sent and when it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<(String, Instant)> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Some((
                    String::from_utf8_lossy(&received).into_owned(),
                    Instant::now(),
                ));
            }
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

async fn partial_headers_are_cut_at_the_header_timeout(db: TestDb) {
    let server = start(&db, &[("ACCESSD_HEADER_TIMEOUT", "1s")]).await;
    let mut stream = connect(&server).await;
    let sent = Instant::now();
    stream
        .write_all(b"GET /client/v4/user/tokens/verify HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    let closed = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let Some((_, at)) = closed else {
        panic!("a connection with unfinished headers stayed open");
    };
    assert!(
        at - sent >= Duration::from_millis(900),
        "not before the timeout"
    );
}

async fn a_dripping_body_is_cut_at_the_body_timeout(db: TestDb) {
    let server = start(&db, &[("ACCESSD_BODY_TIMEOUT", "1s")]).await;
    let mut stream = connect(&server).await;
    let head = format!(
        "POST /client/v4/accounts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    stream
        .write_all(head.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let sent = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let drip = tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut received = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(6), reader.read_to_end(&mut received)).await;
    drip.abort();
    assert!(closed.is_ok(), "a body dripping for 10 s was not cut");
    assert!(Instant::now() - sent < Duration::from_secs(5));
    let answer = String::from_utf8_lossy(&received);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );
}

async fn an_idle_keep_alive_is_closed_at_the_idle_timeout(db: TestDb) {
    let server = start(
        &db,
        &[
            ("ACCESSD_IDLE_TIMEOUT", "1s"),
            ("ACCESSD_HEADER_TIMEOUT", "20s"),
        ],
    )
    .await;
    let mut stream = connect(&server).await;
    let request = format!(
        "GET /client/v4/user/tokens/verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let Some((answer, closed_at)) = read_until_closed(&mut stream, Duration::from_secs(5)).await
    else {
        panic!("an idle kept-alive connection stayed open");
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // A second connection that sends a head slowly but within the header
    // timeout is not cut by the idle timeout.
    let mut slow = connect(&server).await;
    slow.write_all(b"GET /client/v4/user/tokens/verify HTTP/1.1\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    slow.write_all(
        format!("Authorization: Bearer {ADMIN_TOKEN}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let Some((answer, _)) = read_until_closed(&mut slow, Duration::from_secs(5)).await else {
        panic!("no answer");
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed_at.elapsed() < Duration::from_secs(30));
}

async fn shutdown_ends_within_the_grace_period_despite_stuck_clients(db: TestDb) {
    let mut server = start(
        &db,
        &[
            ("ACCESSD_SHUTDOWN_GRACE", "1s"),
            ("ACCESSD_HEADER_TIMEOUT", "60s"),
        ],
    )
    .await;
    let mut stuck = connect(&server).await;
    stuck
        .write_all(b"GET /client/v4/user/tokens/verify HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut dripping = connect(&server).await;
    dripping
        .write_all(b"POST /client/v4/accounts HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let exited =
        tokio::task::spawn_blocking(move || server.terminate_within(Duration::from_secs(8)))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(exited, "the server did not exit after SIGTERM");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

async fn connections_beyond_the_bound_wait_for_a_free_slot(db: TestDb) {
    let server = start(
        &db,
        &[
            ("ACCESSD_MAX_CONNECTIONS", "3"),
            ("ACCESSD_HEADER_TIMEOUT", "2s"),
        ],
    )
    .await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(&server).await;
        stream
            .write_all(b"GET / HTTP/1.1\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        idle.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        server.get("/user/tokens/verify", ADMIN_TOKEN),
    )
    .await
    .unwrap_or_else(|_| panic!("the request never got a connection"));
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(1200),
        "served at once: the bound of 3 connections was not applied ({:?})",
        started.elapsed()
    );
}
