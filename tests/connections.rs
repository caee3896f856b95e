//! Clients that stall: silent connections, partial headers, dripping
//! bodies, idle keep-alives, more connections than allowed (in all and from
//! one client), and a shutdown while they hang on.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::{ADMIN_TOKEN, Server, TestDb};

crate::on_each_backend!(
    partial_headers_are_cut_at_the_header_timeout,
    a_dripping_body_is_cut_at_the_body_timeout,
    an_idle_keep_alive_is_closed_at_the_idle_timeout,
    shutdown_ends_within_the_grace_period_despite_stuck_clients,
    connections_beyond_the_bound_wait_for_a_free_slot,
    a_silent_connection_is_cut_at_the_header_timeout,
    one_client_beyond_its_cap_cannot_keep_another_out,
    idle_keep_alives_make_room_for_a_new_client,
    requests_cut_off_by_their_clients_leave_no_connection_stuck,
);

/// Another client than the tests' usual 127.0.0.1 (Linux routes all of
/// 127/8 to the loopback interface).
const OTHER_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

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

/// A connection to `server` from the address `from`.
async fn connect_from(server: &Server, from: IpAddr) -> TcpStream {
    let address: SocketAddr = server
        .base
        .trim_start_matches("http://")
        .parse()
        .unwrap_or_else(|e| panic!("server address: {e}"));
    let socket = TcpSocket::new_v4().unwrap_or_else(|e| panic!("socket: {e}"));
    socket
        .bind(SocketAddr::new(from, 0))
        .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    socket
        .connect(address)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

/// Sends one kept-alive token verification and reads its whole answer.
async fn verify_kept_alive(stream: &mut TcpStream) -> String {
    let request = format!(
        "GET /client/v4/user/tokens/verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no answer"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(n > 0, "closed before answering");
        received.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or_else(|| panic!("no content-length: {head}"));
        if body.len() >= length {
            return text;
        }
    }
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

async fn a_silent_connection_is_cut_at_the_header_timeout(db: TestDb) {
    let server = start(
        &db,
        &[
            ("ACCESSD_HEADER_TIMEOUT", "1s"),
            ("ACCESSD_IDLE_TIMEOUT", "60s"),
        ],
    )
    .await;
    let connected = Instant::now();
    let mut silent = connect(&server).await;
    let Some((answer, at)) = read_until_closed(&mut silent, Duration::from_secs(10)).await else {
        panic!("a connection that never sent a byte was held past the header timeout");
    };
    assert!(answer.is_empty(), "{answer}");
    assert!(
        at - connected >= Duration::from_millis(900),
        "cut before the header timeout"
    );
}

async fn one_client_beyond_its_cap_cannot_keep_another_out(db: TestDb) {
    let server = start(
        &db,
        &[
            ("ACCESSD_MAX_CONNECTIONS", "8"),
            ("ACCESSD_MAX_CONNECTIONS_PER_CLIENT", "4"),
            ("ACCESSD_HEADER_TIMEOUT", "60s"),
            ("ACCESSD_IDLE_TIMEOUT", "60s"),
        ],
    )
    .await;
    // One client opens 20 connections and sends nothing.
    let mut greedy = Vec::new();
    for _ in 0..20 {
        greedy.push(connect(&server).await);
    }
    // Those beyond its cap of 4 are closed at once, not queued; its first
    // 4 are served (held open).
    let mut closed = 0;
    let mut open = 0;
    for stream in &mut greedy {
        match read_until_closed(stream, Duration::from_millis(1500)).await {
            Some((answer, _)) => {
                assert!(answer.is_empty(), "{answer}");
                closed += 1;
            }
            None => open += 1,
        }
    }
    assert_eq!((open, closed), (4, 16), "(held, closed) of 20 connections");
    // Another client is answered at once, though the first holds its cap.
    let mut other = connect_from(&server, OTHER_CLIENT).await;
    let answer = verify_kept_alive(&mut other).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(greedy);
}

async fn idle_keep_alives_make_room_for_a_new_client(db: TestDb) {
    let server = start(
        &db,
        &[
            ("ACCESSD_MAX_CONNECTIONS", "3"),
            ("ACCESSD_IDLE_TIMEOUT", "60s"),
        ],
    )
    .await;
    // Three kept-alive connections answered once, then idle: every slot is taken.
    let mut kept = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(&server).await;
        let answer = verify_kept_alive(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        kept.push(stream);
    }
    // A new client is served well before the idle timeout, because an idle
    // connection is closed to make room for it.
    let mut newcomer = connect_from(&server, OTHER_CLIENT).await;
    let answer = tokio::time::timeout(Duration::from_secs(20), verify_kept_alive(&mut newcomer))
        .await
        .unwrap_or_else(|_| panic!("a new client waited for idle connections to time out"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut shed = 0;
    for stream in &mut kept {
        if read_until_closed(stream, Duration::from_millis(500))
            .await
            .is_some()
        {
            shed += 1;
        }
    }
    assert_eq!(shed, 1, "exactly one idle connection makes room");
}

/// Clients that give up mid-request (as a load generator does when it
/// stops) must not leave a database connection inside a half-done
/// transaction: every later listing and write still succeeds.
async fn requests_cut_off_by_their_clients_leave_no_connection_stuck(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Cut off").await;
    let users = format!("/accounts/{account}/access/users");
    for i in 0..30 {
        let created = server
            .post(
                &users,
                ADMIN_TOKEN,
                serde_json::json!({"email": format!("cut{i}@example.com")}),
            )
            .await;
        assert!(created.status.is_success(), "{}", created.body);
    }
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_micros(300))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    for round in 0..10 {
        let mut cut = Vec::new();
        for page in 1..=16 {
            let list = impatient
                .get(server.url(&format!("{users}?per_page=5&page={page}")))
                .bearer_auth(ADMIN_TOKEN)
                .send();
            let create = impatient
                .post(server.url(&users))
                .bearer_auth(ADMIN_TOKEN)
                .json(&serde_json::json!({"email": format!("gone{round}.{page}@example.com")}))
                .send();
            cut.push(tokio::spawn(async move {
                let _ = list.await;
                let _ = create.await;
            }));
        }
        for task in cut {
            let _ = task.await;
        }
    }
    for i in 0..20 {
        let page = server
            .get(
                &format!("{users}?per_page=5&page={}", i % 6 + 1),
                ADMIN_TOKEN,
            )
            .await;
        assert!(
            page.status.is_success(),
            "listing after cut-off requests: {}",
            page.body
        );
        let created = server
            .post(
                &users,
                ADMIN_TOKEN,
                serde_json::json!({"email": format!("after{i}@example.com")}),
            )
            .await;
        assert!(
            created.status.is_success(),
            "write after cut-off requests: {}",
            created.body
        );
    }
}
