//! Signing keys: throttled manual rotation, rotation on schedule, deletion
//! of long-retired keys, certificates per application host, and a busy
//! database answered with 503.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{ADMIN_TOKEN, Server, TestDb};
use crate::raw_db::RawDb;

crate::on_each_backend!(
    manual_rotation_is_throttled,
    keys_rotate_on_schedule_and_long_retired_keys_are_deleted,
    certs_list_only_the_keys_of_the_hosts_account,
    a_locked_database_answers_503_with_retry_after,
);

const DAY_MICROS: i64 = 86_400_000_000;

async fn manual_rotation_is_throttled(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let rotate = format!("/accounts/{account}/access/keys/rotate");
    // The first key, made on first use, does not count as a rotation.
    assert_eq!(
        server
            .get(&format!("/accounts/{account}/access/keys"), ADMIN_TOKEN)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        server.post(&rotate, ADMIN_TOKEN, json!({})).await.status,
        StatusCode::OK
    );
    let again = server.post(&rotate, ADMIN_TOKEN, json!({})).await;
    assert_eq!(
        again.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        again.body
    );
    assert_eq!(again.error_code(), 971);
    let wait: u64 = again
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let raw = RawDb::open(&server.database_url).await;
    assert_eq!(
        raw.pairs("SELECT kid, account_id FROM access_signing_keys")
            .await
            .len(),
        2
    );
    raw.close().await;
}

async fn keys_rotate_on_schedule_and_long_retired_keys_are_deleted(db: TestDb) {
    let server = Server::start_with(
        &db,
        &[
            ("ACCESSD_ADMIN_TOKEN", ADMIN_TOKEN),
            ("ACCESSD_PURGE_INTERVAL", "1s"),
        ],
    )
    .await;
    let account = server.create_account("Home").await;
    let keys = format!("/accounts/{account}/access/keys");
    assert_eq!(server.get(&keys, ADMIN_TOKEN).await.status, StatusCode::OK);
    let raw = RawDb::open(&server.database_url).await;
    let (old_kid, _) = raw
        .pairs("SELECT kid, account_id FROM access_signing_keys")
        .await
        .remove(0);
    // The key is 43 days old (interval 42), and a key retired 8 days ago lingers.
    let now = accessd::domain::Timestamp::now().micros();
    raw.execute(
        &format!(
            "UPDATE access_signing_keys SET created_at = {}",
            now - 43 * DAY_MICROS
        ),
        &[],
    )
    .await;
    raw.execute(
        &format!(
            "INSERT INTO access_signing_keys (kid, account_id, private_pem, certificate_pem, public_n, public_e, created_at, retired_at) \
             SELECT 'long-retired', account_id, private_pem, certificate_pem, public_n, public_e, {}, {} FROM access_signing_keys WHERE kid = $1",
            now - 60 * DAY_MICROS,
            now - 8 * DAY_MICROS
        ),
        &[&old_kid],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let rows = raw
            .pairs("SELECT kid, account_id FROM access_signing_keys")
            .await;
        let rotated = rows
            .iter()
            .any(|(kid, _)| kid != &old_kid && kid != "long-retired");
        let purged = rows.iter().all(|(kid, _)| kid != "long-retired");
        if rotated && purged {
            break rows;
        }
        assert!(Instant::now() < deadline, "no rotation or purge: {rows:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        rows.len(),
        2,
        "the new key and the just-retired one: {rows:?}"
    );
    let view = server.get(&keys, ADMIN_TOKEN).await;
    assert_eq!(view.result()["days_until_next_rotation"], json!(42));
    raw.close().await;
}

async fn make_app(server: &Server, account: &str, domain: &str) {
    let everyone = json!({"name": "All", "decision": "allow", "include": [{"everyone": {}}]});
    server.protect(account, domain, everyone, json!({})).await;
    assert_eq!(
        server
            .get(&format!("/accounts/{account}/access/keys"), ADMIN_TOKEN)
            .await
            .status,
        StatusCode::OK
    );
}

async fn certs(server: &Server, host: &str) -> serde_json::Value {
    let response = server
        .http
        .get(format!("{}/cdn-cgi/access/certs", server.base))
        .header("host", host)
        .send()
        .await
        .unwrap_or_else(|e| panic!("certs: {e}"));
    assert_eq!(response.status(), StatusCode::OK);
    response
        .json()
        .await
        .unwrap_or_else(|e| panic!("certs JSON: {e}"))
}

async fn certs_list_only_the_keys_of_the_hosts_account(db: TestDb) {
    let server = Server::start(&db).await;
    let first = server.create_account("First").await;
    let second = server.create_account("Second").await;
    make_app(&server, &first, "one.example.com").await;
    make_app(&server, &second, "two.example.com").await;
    let one = certs(&server, "one.example.com").await;
    let two = certs(&server, "two.example.com").await;
    assert_eq!(one["keys"].as_array().map(Vec::len), Some(1), "{one}");
    assert_eq!(two["keys"].as_array().map(Vec::len), Some(1), "{two}");
    assert_ne!(one["keys"][0]["kid"], two["keys"][0]["kid"]);
    let unknown = certs(&server, "nobody.example.com").await;
    assert_eq!(
        unknown,
        json!({"keys": [], "public_cert": null, "public_certs": []})
    );
}

async fn a_locked_database_answers_503_with_retry_after(db: TestDb) {
    let server = Server::start(&db).await;
    server.create_account("Home").await;
    // Another writer holds the lock on the table the request writes.
    let lock = crate::common::WriteLock::hold(&db, "accounts").await;
    let busy = server
        .post("/accounts", ADMIN_TOKEN, json!({"name": "Second"}))
        .await;
    assert_eq!(
        busy.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        busy.body
    );
    assert_eq!(busy.error_code(), 10503);
    assert_eq!(
        busy.headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    drop(lock);
    let done = server
        .post("/accounts", ADMIN_TOKEN, json!({"name": "Second"}))
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
}
