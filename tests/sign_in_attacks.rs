//! The sign-in pages against clients that do not play along: concurrent
//! guesses, code floods, forged origins, IPv4 clients on IPv6 sockets.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::TestDb;
use crate::common::login::{LoginBed, burst_pages};

crate::on_each_backend!(
    concurrent_guesses_cannot_outrun_the_pin_lock,
    codes_are_limited_per_address_whatever_its_case,
    codes_are_limited_per_client,
    codes_are_limited_per_application,
    ip_rules_match_ipv4_clients_on_an_ipv6_socket,
    forms_from_any_other_origin_are_refused,
    identity_is_answered_only_on_the_token_audience_host,
    concurrent_seat_changes_stay_consistent,
    a_busy_database_asks_the_sign_in_page_to_retry,
    no_spelling_of_an_address_escapes_its_rules_or_limits,
    behind_a_trusted_proxy_each_client_has_its_own_limit,
);

const MAX_TRIES: usize = 5;

fn everyone() -> serde_json::Value {
    json!([{"everyone": {}}])
}

/// A six-digit code that is not `code`.
fn wrong(code: &str) -> String {
    let n: u32 = code.parse().unwrap_or(0);
    format!("{:06}", (n + 1) % 1_000_000)
}

async fn concurrent_guesses_cannot_outrun_the_pin_lock(db: TestDb) {
    let bed = LoginBed::start(&db, everyone(), &[]).await;

    // Forty wrong guesses at once: five are compared, the rest find the code locked.
    let mut visitor = bed.visitor();
    let code_page = bed.ask_code(&mut visitor, "guess@example.com").await;
    let right = bed.newest_code();
    let guesses = (0..40)
        .map(|_| visitor.verify_request(&code_page, &wrong(&right)))
        .collect();
    let answers = burst_pages(guesses).await;
    let compared_wrong = answers
        .iter()
        .filter(|a| a.status == StatusCode::UNAUTHORIZED)
        .count();
    let locked = answers
        .iter()
        .filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(compared_wrong, MAX_TRIES - 1, "tries left answers");
    assert_eq!(locked, 40 - (MAX_TRIES - 1));
    let late = visitor.verify(&code_page, &right).await;
    assert_eq!(late.status, StatusCode::TOO_MANY_REQUESTS, "{}", late.html);

    // Thirty wrong guesses and the right code at once: at most five
    // comparisons happen in all, whichever wins.
    let mut visitor = bed.visitor();
    let code_page = bed.ask_code(&mut visitor, "race@example.com").await;
    let right = bed.newest_code();
    let mut guesses: Vec<_> = (0..30)
        .map(|_| visitor.verify_request(&code_page, &wrong(&right)))
        .collect();
    guesses.insert(15, visitor.verify_request(&code_page, &right));
    let answers = burst_pages(guesses).await;
    let signed_in = answers
        .iter()
        .filter(|a| a.status == StatusCode::SEE_OTHER)
        .count();
    let tries_left = answers
        .iter()
        .filter(|a| a.status == StatusCode::UNAUTHORIZED)
        .count();
    assert!(signed_in <= 1);
    assert!(
        signed_in + tries_left <= MAX_TRIES,
        "{signed_in} sign-ins and {tries_left} compared wrong codes"
    );
    assert!(
        answers.iter().all(|a| [
            StatusCode::SEE_OTHER,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
        .contains(&a.status)),
        "every answer is a sign-in, a wrong code or a lock"
    );
}

/// Case does not make another address, in any script: the fifth code to
/// one address is the last, however it is spelt and however fast it is asked.
async fn codes_are_limited_per_address_whatever_its_case(db: TestDb) {
    let bed = LoginBed::start(&db, everyone(), &[]).await;
    let mut visitor = bed.visitor();
    let login = visitor.open_login(&bed.host).await;
    let spellings = [
        "Ärger@example.com",
        "ärger@example.com",
        "ÄRGER@EXAMPLE.COM",
        "ärger@Example.com",
    ];
    let sends = (0..8)
        .map(|i| visitor.send_code_request(&login, spellings[i % spellings.len()]))
        .collect();
    let answers = burst_pages(sends).await;
    let sent = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .count();
    let refused: Vec<_> = answers
        .iter()
        .filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(
        sent,
        5,
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert_eq!(refused.len(), 3);
    for answer in refused {
        let wait: u64 = answer
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!((1..=600).contains(&wait), "Retry-After {wait}");
    }
    assert_eq!(bed.messages().len(), 5);
}

/// Asks codes for `count` different addresses at once; how many were sent.
async fn spray(bed: &LoginBed, count: usize) -> usize {
    let mut visitor = bed.visitor();
    let login = visitor.open_login(&bed.host).await;
    let sends = (0..count)
        .map(|i| visitor.send_code_request(&login, &format!("user{i}@example.com")))
        .collect();
    let answers = burst_pages(sends).await;
    assert!(
        answers
            .iter()
            .all(|a| a.status == StatusCode::OK || a.headers.contains_key("retry-after"))
    );
    answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .count()
}

/// One client spraying many addresses is stopped at its own limit.
async fn codes_are_limited_per_client(db: TestDb) {
    let bed = LoginBed::start(&db, everyone(), &[("ACCESSD_CODES_PER_CLIENT", "12")]).await;
    assert_eq!(spray(&bed, 40).await, 12);
    assert_eq!(bed.messages().len(), 12);
}

/// Many clients together are stopped at the application's limit.
async fn codes_are_limited_per_application(db: TestDb) {
    let env = [
        ("ACCESSD_CODES_PER_CLIENT", "1000"),
        ("ACCESSD_CODES_PER_APPLICATION", "7"),
    ];
    let bed = LoginBed::start(&db, everyone(), &env).await;
    assert_eq!(spray(&bed, 20).await, 7);
    assert_eq!(bed.messages().len(), 7);
}

/// On a dual-stack socket an IPv4 client arrives as `::ffff:127.0.0.1`; an
/// `ip` rule for `127.0.0.1/32` must still match it, and one for another
/// network must still not.
async fn ip_rules_match_ipv4_clients_on_an_ipv6_socket(db: TestDb) {
    let listen = [("ACCESSD_LISTEN", "[::]:0")];
    let bed = LoginBed::start(&db, json!([{"ip": {"ip": "127.0.0.1/32"}}]), &listen).await;
    let allowed = bed.sign_in("v4@example.com").await;
    assert_eq!(allowed.status, StatusCode::SEE_OTHER, "{}", allowed.html);
    drop(bed);

    let other_db = match &db {
        TestDb::Sqlite { .. } => TestDb::sqlite(),
        TestDb::Postgres { .. } => TestDb::postgres().await.unwrap_or_else(TestDb::sqlite),
    };
    let bed = LoginBed::start(&other_db, json!([{"ip": {"ip": "10.0.0.0/8"}}]), &listen).await;
    let denied = bed.sign_in("v4@example.com").await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.html);
}

/// The CSRF check takes only the sign-in pages' own origin: not one that
/// merely prefixes it, and not the opaque `null` of sandboxed frames.
async fn forms_from_any_other_origin_are_refused(db: TestDb) {
    let bed = LoginBed::start(&db, everyone(), &[]).await;
    let mut visitor = bed.visitor();
    let login = visitor.open_login(&bed.host).await;
    let base = bed.server.base.clone();
    let prefix = base
        .rsplit_once(':')
        .map_or(base.as_str(), |(p, _)| p)
        .to_string();
    for origin in ["null", prefix.as_str(), "http://evil.example"] {
        let request = visitor
            .send_code_request(&login, "victim@example.com")
            .header("origin", origin);
        let answer = visitor.send(request).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "origin {origin}");
    }
    assert!(bed.messages().is_empty());
    let own = visitor
        .send_code_request(&login, "victim@example.com")
        .header("origin", base.as_str());
    assert_eq!(visitor.send(own).await.status, StatusCode::OK);
}

/// get-identity checks the token against the application of the Host it is
/// asked on; a Host no application claims has no audience and answers 401.
async fn identity_is_answered_only_on_the_token_audience_host(db: TestDb) {
    let bed = LoginBed::start(&db, everyone(), &[]).await;
    let signed_in = bed.sign_in("who@example.com").await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.html
    );
    let token = signed_in.app_token();
    let ask = |host: &str| {
        bed.server
            .http
            .get(format!("{}/cdn-cgi/access/get-identity", bed.server.base))
            .header("host", host)
            .header("cf-access-jwt-assertion", &token)
            .send()
    };
    let on_app = ask(&bed.host).await.map(|r| r.status()).ok();
    assert_eq!(on_app, Some(StatusCode::OK));
    let port = bed.host.rsplit(':').next().unwrap_or_default();
    for elsewhere in [format!("127.0.0.1:{port}"), "unknown.example".to_string()] {
        let status = ask(&elsewhere).await.map(|r| r.status()).ok();
        assert_eq!(status, Some(StatusCode::UNAUTHORIZED), "{elsewhere}");
    }
}

/// Concurrent seat changes for one user, some freeing the seat: every one
/// is answered, the seat ends as one of them asked, and a freed seat leaves
/// no active session behind.
async fn concurrent_seat_changes_stay_consistent(db: TestDb) {
    use crate::common::ADMIN_TOKEN;

    let bed = LoginBed::start(&db, everyone(), &[]).await;
    let signed_in = bed.sign_in("seated@example.com").await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.html
    );
    let users = format!("/accounts/{}/access/users", bed.account);
    let listed = bed.server.get(&users, ADMIN_TOKEN).await;
    let user = &listed.result()[0];
    let (user_id, seat_uid) = (
        user["id"].as_str().unwrap_or_default().to_string(),
        user["seat_uid"].as_str().unwrap_or_default().to_string(),
    );
    let asks = [(true, false), (false, false), (true, true), (false, true)];
    let seats = format!("/accounts/{}/access/seats", bed.account);
    let changes = (0..24)
        .map(|i| {
            let (access, gateway) = asks[i % asks.len()];
            bed.server
                .http
                .patch(bed.server.url(&seats))
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!([{"seat_uid": seat_uid, "access_seat": access, "gateway_seat": gateway}]))
        })
        .collect();
    for reply in crate::common::burst(changes).await {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    let after = bed
        .server
        .get(&format!("{users}/{user_id}"), ADMIN_TOKEN)
        .await;
    let state = (
        after.result()["access_seat"].as_bool().unwrap_or_default(),
        after.result()["gateway_seat"].as_bool().unwrap_or_default(),
    );
    assert!(asks.contains(&state), "{state:?}");
    let sessions = bed
        .server
        .get(&format!("{users}/{user_id}/active_sessions"), ADMIN_TOKEN)
        .await;
    assert_eq!(sessions.status, StatusCode::OK, "{}", sessions.body);
    let active = sessions.result().as_array().map_or(usize::MAX, Vec::len);
    if state == (false, false) {
        assert_eq!(active, 0, "a freed seat ends every session");
    }
    let again = bed.sign_in("seated@example.com").await;
    assert_eq!(
        again.status,
        StatusCode::SEE_OTHER,
        "the next login takes a seat"
    );

    let too_many =
        vec![json!({"seat_uid": seat_uid, "access_seat": true, "gateway_seat": false}); 1_001];
    let refused = bed
        .server
        .call("PATCH", &seats, ADMIN_TOKEN, Some(json!(too_many)))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
}

/// A sign-in page that meets a locked database answers 503 with
/// Retry-After, like the API, and works once the lock is gone.
async fn a_busy_database_asks_the_sign_in_page_to_retry(db: TestDb) {
    let bed = LoginBed::start(&db, everyone(), &[]).await;
    let mut visitor = bed.visitor();
    let login = visitor.open_login(&bed.host).await;
    let lock = crate::common::WriteLock::hold(&db, "throttle_windows").await;
    let busy = visitor.send_code(&login, "patient@example.com").await;
    assert_eq!(
        busy.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        busy.html
    );
    assert_eq!(
        busy.headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    drop(lock);
    let sent = visitor.send_code(&login, "patient@example.com").await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.html);
}

/// Mailers deliver `"fired"@corp.test` and `fi\red@corp.test` to
/// `fired@corp.test`, so such spellings are refused outright; case (in any
/// script) and punycode make no other address for rules or for the
/// per-address limit.
async fn no_spelling_of_an_address_escapes_its_rules_or_limits(db: TestDb) {
    let policy = json!({"name": "Staff", "decision": "allow",
        "include": [{"email_domain": {"domain": "corp.test"}}, {"email_domain": {"domain": "bücher.de"}}],
        "exclude": [{"email": {"email": "fired@corp.test"}}, {"email": {"email": "ärger@corp.test"}}]});
    let bed = LoginBed::start_with_policy(&db, policy, &[]).await;
    let mut visitor = bed.visitor();
    let login = visitor.open_login(&bed.host).await;
    for disguised in [
        "\"fired\"@corp.test",
        "fi\\red@corp.test",
        "fired(x)@corp.test",
    ] {
        let refused = visitor.send_code(&login, disguised).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{disguised}");
    }
    assert!(bed.messages().is_empty(), "no code was mailed");

    for excluded in ["FIRED@CORP.TEST", "ÄRGER@corp.test"] {
        let denied = bed.sign_in(excluded).await;
        assert_eq!(
            denied.status,
            StatusCode::FORBIDDEN,
            "{excluded}: {}",
            denied.html
        );
    }
    let member = bed.sign_in("Jürgen@XN--BCHER-KVA.de").await;
    assert_eq!(member.status, StatusCode::SEE_OTHER, "{}", member.html);

    let spellings = ["anna@bücher.de", "anna@xn--bcher-kva.de", "ANNA@BÜCHER.DE"];
    let sends = (0..8)
        .map(|i| visitor.send_code_request(&login, spellings[i % spellings.len()]))
        .collect();
    let sent = burst_pages(sends)
        .await
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .count();
    assert_eq!(sent, 5, "one address, however it is spelt");
}

/// Behind a trusted proxy every request comes from the proxy's address; the
/// per-client limit must count the clients `X-Forwarded-For` names, or one
/// client would use up everyone's codes. An untrusted peer's header counts
/// for nothing.
async fn behind_a_trusted_proxy_each_client_has_its_own_limit(db: TestDb) {
    let env = [
        ("ACCESSD_TRUSTED_PROXY", "127.0.0.1/32"),
        ("ACCESSD_CODES_PER_CLIENT", "3"),
    ];
    let bed = LoginBed::start(&db, everyone(), &env).await;
    let mut visitor = bed.visitor();
    let login = visitor.open_login(&bed.host).await;
    let send = |client: &str, i: usize| {
        visitor
            .send_code_request(&login, &format!("person{i}@example.com"))
            .header("x-forwarded-for", client.to_string())
    };
    let greedy: Vec<_> = (0..5).map(|i| send("198.51.100.7", i)).collect();
    let sent = burst_pages(greedy)
        .await
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .count();
    assert_eq!(sent, 3, "one client, its own limit");
    let others: Vec<_> = (0..4)
        .map(|i| send(&format!("198.51.100.{}", 20 + i), 10 + i))
        .collect();
    for answer in burst_pages(others).await {
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "other clients are not held back"
        );
    }
}
