//! Sessions, identities and failed logins, written through the store as the
//! login flow writes them, read back through the API.

use std::collections::BTreeMap;

use accessd::domain::activity::{
    FailedLogin, FailedLoginMetadata, Geo, Identity, IdpRef, Session, SessionApp, SessionNonce,
};
use accessd::domain::user::UserId;
use accessd::domain::{AccountId, Timestamp};
use accessd::store::Store;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{ADMIN_TOKEN, Server, TestDb};

crate::on_each_backend!(
    records_read_back_as_cloudflare_shapes_them,
    retention_purges_what_has_expired
);

struct Fixture {
    store: Store,
    account: AccountId,
    user: UserId,
}

async fn fixture(server: &Server) -> (Fixture, String) {
    let account = server.create_account("Home").await;
    let reply = server
        .post(
            &format!("/accounts/{account}/access/users"),
            ADMIN_TOKEN,
            json!({"email": "jane@example.com", "name": "Jane"}),
        )
        .await;
    let user = reply.result()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let store = Store::connect(&server.database_url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let fixture = Fixture {
        store,
        account: AccountId::parse(&account).unwrap_or_else(|| panic!("account id")),
        user: UserId::parse(&user).unwrap_or_else(|| panic!("user id")),
    };
    (fixture, format!("/accounts/{account}/access/users/{user}"))
}

fn identity(f: &Fixture, iat: Timestamp, ip: &str) -> Identity {
    Identity {
        account_id: f.account.to_string(),
        auth_status: "NONE".into(),
        email: "jane@example.com".into(),
        geo: Geo {
            country: "DE".into(),
        },
        iat: iat.unix_seconds(),
        idp: IdpRef {
            id: "5ab4ffd2-b0ae-4b45-9c1a-3b6e4d4e6a55".into(),
            kind: "onetimepin".into(),
        },
        ip: ip.into(),
        user_uuid: f.user.to_string(),
        version: 2,
        ..Identity::default()
    }
}

fn session(f: &Fixture, issued: Timestamp, lifetime: i64, revoked: bool, ip: &str) -> Session {
    let app = "cc2a8145-0128-4429-87f3-872c4d380c4e".to_string();
    Session {
        nonce: SessionNonce::generate(),
        account_id: f.account.clone(),
        user_id: f.user.clone(),
        name: "Jane".into(),
        issued_at: issued,
        expires_at: issued.plus_seconds(lifetime),
        revoked_at: revoked.then_some(issued),
        apps: BTreeMap::from([(
            app.clone(),
            SessionApp {
                hostname: "wiki.example.com".into(),
                name: "Wiki".into(),
                kind: "self_hosted".into(),
                uid: app,
            },
        )]),
        identity: identity(f, issued, ip),
    }
}

fn failure(f: &Fixture, at: Timestamp, keep: i64) -> FailedLogin {
    FailedLogin {
        account_id: f.account.clone(),
        user_id: f.user.clone(),
        occurred_at: at,
        expires_at: at.plus_seconds(keep),
        metadata: FailedLoginMetadata {
            app_name: "Wiki".into(),
            aud: "39691c1480a2352a18ece567debc2b32552686cbd38eec0887aa18d5d3f00c04".into(),
            datetime: at.to_millis_string(),
            ray_id: "6d76a8a42ead4133".into(),
            user_email: "jane@example.com".into(),
            user_uuid: f.user.to_string(),
            reason: "policy_denied".into(),
        },
    }
}

async fn records_read_back_as_cloudflare_shapes_them(db: TestDb) {
    let server = Server::start(&db).await;
    let (f, user_path) = fixture(&server).await;
    let now = Timestamp::now();
    let older = session(&f, now.plus_seconds(-3600), 21_600, false, "198.51.100.7");
    let newer = session(&f, now.plus_seconds(-60), 21_600, false, "198.51.100.8");
    let expired = session(&f, now.plus_seconds(-90_000), 21_600, false, "198.51.100.9");
    let revoked = session(&f, now.plus_seconds(-120), 21_600, true, "198.51.100.10");
    for s in [&older, &newer, &expired, &revoked] {
        f.store
            .record_session(s)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    f.store
        .record_last_identity(&f.user, newer.issued_at, &newer.identity)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let recent_failure = failure(&f, now.plus_seconds(-30), 86_400);
    f.store
        .record_failed_login(&failure(&f, now.plus_seconds(-7200), 86_400))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    f.store
        .record_failed_login(&recent_failure)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    f.store
        .record_failed_login(&failure(&f, now.plus_seconds(-90_000), 60))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let listed = server
        .get(&format!("{user_path}/active_sessions"), ADMIN_TOKEN)
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    let sessions = listed.result().as_array().cloned().unwrap_or_default();
    assert_eq!(
        sessions.len(),
        2,
        "expired and revoked sessions are not active: {}",
        listed.body
    );
    assert_eq!(
        sessions[0],
        json!({
            "expiration": newer.expires_at.unix_seconds(),
            "metadata": {
                "apps": {"cc2a8145-0128-4429-87f3-872c4d380c4e": {
                    "hostname": "wiki.example.com", "name": "Wiki", "type": "self_hosted",
                    "uid": "cc2a8145-0128-4429-87f3-872c4d380c4e"}},
                "expires": newer.expires_at.unix_seconds(),
                "iat": newer.issued_at.unix_seconds(),
                "nonce": newer.nonce.as_str(),
                "ttl": 21_600
            },
            "name": "Jane"
        })
    );
    assert_eq!(sessions[1]["metadata"]["nonce"], older.nonce.as_str());

    let get = |s: &Session| format!("{user_path}/active_sessions/{}", s.nonce.as_str());
    let active = server.get(&get(&newer), ADMIN_TOKEN).await;
    let mut expected = serde_json::to_value(&newer.identity).unwrap_or_default();
    expected["isActive"] = json!(true);
    assert_eq!(active.result(), &expected);
    assert_eq!(active.result()["devicePosture"], json!({}));
    assert_eq!(
        active.result()["idp"],
        json!({"id": "5ab4ffd2-b0ae-4b45-9c1a-3b6e4d4e6a55", "type": "onetimepin"})
    );
    for inactive in [&expired, &revoked] {
        let reply = server.get(&get(inactive), ADMIN_TOKEN).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.result()["isActive"], false);
        assert_eq!(reply.result()["ip"], inactive.identity.ip.as_str());
    }
    let unknown = server
        .get(
            &format!("{user_path}/active_sessions/AAAAAAAAAAAAAAAA"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error_code(), 12130);

    let seen = server
        .get(&format!("{user_path}/last_seen_identity"), ADMIN_TOKEN)
        .await;
    assert_eq!(
        seen.result(),
        &serde_json::to_value(&newer.identity).unwrap_or_default()
    );
    assert!(seen.result().get("isActive").is_none());

    let failures = server
        .get(&format!("{user_path}/failed_logins"), ADMIN_TOKEN)
        .await;
    let failures = failures.result().as_array().cloned().unwrap_or_default();
    assert_eq!(failures.len(), 2, "a failure past its expiry is not listed");
    assert_eq!(
        failures[0],
        json!({
            "expiration": recent_failure.expires_at.unix_seconds(),
            "metadata": {
                "app_name": "Wiki",
                "aud": "39691c1480a2352a18ece567debc2b32552686cbd38eec0887aa18d5d3f00c04",
                "datetime": recent_failure.metadata.datetime,
                "ray_id": "6d76a8a42ead4133",
                "user_email": "jane@example.com",
                "user_uuid": f.user.to_string(),
                "reason": "policy_denied"
            }
        })
    );
    assert!(
        failures[0]["metadata"]["datetime"]
            .as_str()
            .is_some_and(|d| d.len() == 24 && d.ends_with('Z'))
    );

    // Deleting the user revokes every session in the same step.
    assert_eq!(
        server.delete(&user_path, ADMIN_TOKEN).await.status,
        StatusCode::ACCEPTED
    );
    for s in [&older, &newer] {
        let stored = f
            .store
            .find_session(&f.account, &f.user, &s.nonce)
            .await
            .ok()
            .flatten();
        assert!(
            stored.is_some_and(|s| s.revoked_at.is_some()),
            "session revoked with its user"
        );
    }
    let none: Value = server
        .get(&format!("{user_path}/last_seen_identity"), ADMIN_TOKEN)
        .await
        .body;
    assert_eq!(none["errors"][0]["code"], 12130);
}

async fn retention_purges_what_has_expired(db: TestDb) {
    let server = Server::start_with(
        &db,
        &[
            ("ACCESSD_ADMIN_TOKEN", crate::common::ADMIN_TOKEN),
            ("ACCESSD_SESSION_RETENTION", "1s"),
            ("ACCESSD_PURGE_INTERVAL", "200ms"),
        ],
    )
    .await;
    let (f, user_path) = fixture(&server).await;
    let now = Timestamp::now();
    let stale = session(&f, now.plus_seconds(-7200), 60, false, "192.0.2.1");
    let live = session(&f, now, 3600, false, "192.0.2.2");
    f.store
        .record_session(&stale)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    f.store
        .record_session(&live)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    f.store
        .record_failed_login(&failure(&f, now.plus_seconds(-120), 60))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    f.store
        .record_failed_login(&failure(&f, now, 3600))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let stale_path = format!("{user_path}/active_sessions/{}", stale.nonce.as_str());
    let mut purged = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if server.get(&stale_path, ADMIN_TOKEN).await.status == StatusCode::NOT_FOUND {
            purged = true;
            break;
        }
    }
    assert!(purged, "the expired session was purged");
    let remaining = f
        .store
        .list_failed_logins(&f.account, &f.user, Timestamp::from_micros(0))
        .await
        .unwrap_or_default();
    assert_eq!(
        remaining.len(),
        1,
        "only the unexpired failed login is kept"
    );
    let kept = server
        .get(
            &format!("{user_path}/active_sessions/{}", live.nonce.as_str()),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(kept.result()["isActive"], true);
}

crate::on_each_backend!(revoke_user_and_seat_removal_end_sessions);

async fn revoke_user_and_seat_removal_end_sessions(db: TestDb) {
    let server = Server::start(&db).await;
    let (f, user_path) = fixture(&server).await;
    let base = format!("/accounts/{}/access", f.account);
    let now = Timestamp::now();
    let first = session(&f, now, 3600, false, "192.0.2.1");
    f.store
        .record_session(&first)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let unknown = server
        .post(
            &format!("{base}/organizations/revoke_user"),
            ADMIN_TOKEN,
            json!({"email": "nobody@example.com"}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::OK);
    assert_eq!(unknown.result(), &json!(false));
    let mismatch = server
        .post(&format!("{base}/organizations/revoke_user"), ADMIN_TOKEN,
              json!({"email": "jane@example.com", "user_uid": "00000000-0000-4000-8000-000000000000"}))
        .await;
    assert_eq!(mismatch.status, StatusCode::BAD_REQUEST);
    let revoked = server
        .post(&format!("{base}/organizations/revoke_user?devices=true"), ADMIN_TOKEN,
              json!({"email": "JANE@example.com", "body_devices": true, "warp_session_reauth": false}))
        .await;
    assert_eq!(revoked.result(), &json!(true), "{}", revoked.body);
    let sessions = server
        .get(&format!("{user_path}/active_sessions"), ADMIN_TOKEN)
        .await;
    assert_eq!(sessions.result(), &json!([]), "revoked at once");
    let user = server.get(&user_path, ADMIN_TOKEN).await.result().clone();

    // Seats: unknown seat changes nothing; both flags false frees the seat and ends sessions.
    let second = session(&f, now, 3600, false, "192.0.2.2");
    f.store
        .record_session(&second)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let seat_uid = user["seat_uid"].as_str().unwrap_or_default();
    let unknown_seat = server
        .call("PATCH", &format!("{base}/seats"), ADMIN_TOKEN, Some(json!([
            {"seat_uid": seat_uid, "access_seat": true, "gateway_seat": true},
            {"seat_uid": "00000000-0000-4000-8000-000000000000", "access_seat": false, "gateway_seat": false}
        ])))
        .await;
    assert_eq!(unknown_seat.status, StatusCode::NOT_FOUND);
    assert_eq!(
        server.get(&user_path, ADMIN_TOKEN).await.result()["gateway_seat"],
        false,
        "all or nothing"
    );
    let granted = server
        .call(
            "PATCH",
            &format!("{base}/seats"),
            ADMIN_TOKEN,
            Some(json!([{"seat_uid": seat_uid, "access_seat": true, "gateway_seat": false}])),
        )
        .await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.body);
    assert_eq!(granted.result()[0]["access_seat"], true);
    assert_eq!(granted.result()[0]["seat_uid"], seat_uid);
    assert_eq!(
        server
            .get(&format!("{user_path}/active_sessions"), ADMIN_TOKEN)
            .await
            .result()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let removed = server
        .call(
            "PATCH",
            &format!("{base}/seats"),
            ADMIN_TOKEN,
            Some(json!([{"seat_uid": seat_uid, "access_seat": false, "gateway_seat": false}])),
        )
        .await;
    assert_eq!(removed.status, StatusCode::OK);
    let after = server.get(&user_path, ADMIN_TOKEN).await.result().clone();
    assert_eq!(
        (after["access_seat"].clone(), after["gateway_seat"].clone()),
        (json!(false), json!(false))
    );
    assert_eq!(
        server
            .get(&format!("{user_path}/active_sessions"), ADMIN_TOKEN)
            .await
            .result(),
        &json!([])
    );
}
