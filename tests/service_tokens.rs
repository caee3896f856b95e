//! Access service tokens: the API on the real binary, the check of presented
//! credentials on the store of both backends, and service-auth policies.

use std::net::IpAddr;

use accessd::auth::service_token::authenticate_request;
use accessd::domain::policy::{Requester, Verdict, evaluate};
use accessd::domain::service_token::{
    NewServiceToken, Refusal, ServiceTokenId, StoredServiceToken,
};
use accessd::domain::{AccountId, AppId, Timestamp};
use accessd::gate::Gate;
use accessd::store::Store;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::common::{ADMIN_TOKEN, Server, TestDb, burst};

const SERVICE_TOKENS_READ: &str = "91f7ce32fa614d73b7e1fc8f0e78582b";
const SERVICE_TOKENS_WRITE: &str = "a1c0fec57cf94af79479a6d827fa518c";
const APPS_WRITE: &str = "1e13c5124ca64b72b1969a67e8829049";

crate::on_each_backend!(
    lifecycle_through_the_api,
    invalid_requests_name_the_field,
    only_the_write_group_writes,
    concurrent_rotations_leave_one_secret,
    presented_tokens_are_checked_on_the_store,
    service_auth_policies_admit_presented_tokens,
);

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

fn credentials(client_id: &str, secret: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("CF-Access-Client-Id", client_id),
        ("CF-Access-Client-Secret", secret),
    ] {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    headers
}

async fn open(db: &TestDb) -> Store {
    let store = Store::connect(&db.url())
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("migrate: {e}"));
    store
}

/// What the store makes of `headers` for `account` at `now`.
async fn check(
    store: &Store,
    account: &AccountId,
    headers: &HeaderMap,
    now: Timestamp,
) -> Result<Option<accessd::domain::service_token::ServiceToken>, Refusal> {
    authenticate_request(&Gate::default(), store, account, headers, None, now)
        .await
        .unwrap_or_else(|e| panic!("store: {e}"))
}

async fn lifecycle_through_the_api(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let base = format!("/accounts/{account}/access/service_tokens");

    let created = server
        .post(&base, ADMIN_TOKEN, json!({"name": "CI runner"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let token = created.result().clone();
    let id = text(&token["id"]);
    let client_id = text(&token["client_id"]);
    let secret = text(&token["client_secret"]);
    assert!(ServiceTokenId::parse(&id).is_some(), "{token}");
    assert!(
        client_id.len() == 39 && client_id.ends_with(".access"),
        "{client_id}"
    );
    assert!(
        secret.starts_with("cfast_") && secret.len() == 54,
        "{secret}"
    );
    assert_eq!(token["duration"], "8760h");
    assert_eq!(token["enabled"], true);
    assert_eq!(token["last_seen_at"], Value::Null);
    assert_eq!(token["previous_client_secret_expires_at"], Value::Null);
    let created_at = Timestamp::parse(token["created_at"].as_str().unwrap_or_default());
    let expires_at = Timestamp::parse(token["expires_at"].as_str().unwrap_or_default());
    assert_eq!(
        created_at.map(|t| t.plus_seconds(8760 * 3600)),
        expires_at,
        "{token}"
    );

    // The secret is shown once: no read answers it again.
    let fetched = server.get(&format!("{base}/{id}"), ADMIN_TOKEN).await;
    assert_eq!(fetched.status, StatusCode::OK, "{}", fetched.body);
    assert!(fetched.result().get("client_secret").is_none());
    assert_eq!(fetched.result()["client_id"], client_id.as_str());
    let listed = server.get(&base, ADMIN_TOKEN).await;
    assert!(!listed.body.to_string().contains(&secret));
    assert_eq!(listed.body["result_info"]["total_count"], 1);

    let forever = server
        .post(
            &base,
            ADMIN_TOKEN,
            json!({"name": "Backup job", "duration": "forever", "enabled": false, "client_secret_version": 3.0}),
        )
        .await;
    assert_eq!(forever.status, StatusCode::CREATED, "{}", forever.body);
    assert_eq!(forever.result()["expires_at"], Value::Null);
    assert_eq!(forever.result()["client_secret_version"], 3);
    assert_eq!(forever.result()["enabled"], false);

    let names = |reply: &crate::common::Reply| -> Vec<String> {
        reply
            .result()
            .as_array()
            .map(|items| items.iter().map(|t| text(&t["name"])).collect())
            .unwrap_or_default()
    };
    let by_name = server
        .get(&format!("{base}?name=ci+runner"), ADMIN_TOKEN)
        .await;
    assert_eq!(names(&by_name), ["CI runner"]);
    let prefix = &client_id[..8];
    let by_search = server
        .get(&format!("{base}?search={prefix}"), ADMIN_TOKEN)
        .await;
    assert_eq!(names(&by_search), ["CI runner"]);
    let page = server
        .get(&format!("{base}?per_page=1&page=2"), ADMIN_TOKEN)
        .await;
    assert_eq!(names(&page), ["Backup job"]);
    let past = server
        .get(&format!("{base}?per_page=1&page=3"), ADMIN_TOKEN)
        .await;
    assert_eq!(past.status, StatusCode::OK);
    assert_eq!(past.result(), &json!([]));

    let updated = server
        .put(
            &format!("{base}/{id}"),
            ADMIN_TOKEN,
            json!({"name": "CI", "duration": "1h"}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.result()["name"], "CI");
    assert_eq!(updated.result()["enabled"], true, "absent fields stay");
    assert!(updated.result().get("client_secret").is_none());
    let short = Timestamp::parse(updated.result()["expires_at"].as_str().unwrap_or_default());
    assert!(
        short < expires_at && short > Some(Timestamp::now()),
        "{}",
        updated.body
    );

    let refreshed = server
        .post(&format!("{base}/{id}/refresh"), ADMIN_TOKEN, json!({}))
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let later = Timestamp::parse(
        refreshed.result()["expires_at"]
            .as_str()
            .unwrap_or_default(),
    );
    assert!(later > short, "{}", refreshed.body);

    let rotated = server
        .post(&format!("{base}/{id}/rotate"), ADMIN_TOKEN, json!({}))
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let new_secret = text(&rotated.result()["client_secret"]);
    assert!(new_secret.starts_with("cfast_") && new_secret != secret);
    assert_eq!(rotated.result()["client_id"], client_id.as_str());
    assert_eq!(rotated.result()["client_secret_version"], 2);

    let deleted = server.delete(&format!("{base}/{id}"), ADMIN_TOKEN).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert_eq!(deleted.result()["id"], id.as_str());
    assert_eq!(deleted.result()["name"], "CI");
    let gone = server.get(&format!("{base}/{id}"), ADMIN_TOKEN).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error_code(), 12130);
}

async fn invalid_requests_name_the_field(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let base = format!("/accounts/{account}/access/service_tokens");
    for (body, pointer) in [
        (json!({}), "/name"),
        (json!({"name": "   "}), "/name"),
        (json!({"name": "x".repeat(351)}), "/name"),
        (json!({"name": "t", "duration": "1y"}), "/duration"),
        (json!({"name": "t", "duration": "0s"}), "/duration"),
        (
            json!({"name": "t", "duration": "9".repeat(80) + "h"}),
            "/duration",
        ),
        (
            json!({"name": "t", "client_secret_version": 1.5}),
            "/client_secret_version",
        ),
        (
            json!({"name": "t", "client_secret_version": 0}),
            "/client_secret_version",
        ),
        (
            json!({"name": "t", "previous_client_secret_expires_at": "soon"}),
            "/previous_client_secret_expires_at",
        ),
        (json!({"name": "t", "colour": "red"}), ""),
        (json!({"name": 7}), "/name"),
    ] {
        let reply = server.post(&base, ADMIN_TOKEN, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.body
        );
        assert_eq!(reply.error_code(), 12002, "{body}: {}", reply.body);
        if !pointer.is_empty() {
            assert_eq!(
                reply.body["errors"][0]["source"]["pointer"], pointer,
                "{body}"
            );
        }
    }
    let created = server
        .post(
            &base,
            ADMIN_TOKEN,
            json!({"name": "t", "client_secret_version": 2}),
        )
        .await;
    let id = text(&created.result()["id"]);
    let lower = server
        .put(
            &format!("{base}/{id}"),
            ADMIN_TOKEN,
            json!({"client_secret_version": 1}),
        )
        .await;
    assert_eq!(lower.status, StatusCode::BAD_REQUEST, "{}", lower.body);
    // A grace period beyond 30 days is refused; on create, where there is no
    // previous secret, the SDKs' far-off example is accepted and ignored.
    let far = Timestamp::now().plus_seconds(31 * 24 * 3600).to_string();
    let long_grace = server
        .post(
            &format!("{base}/{id}/rotate"),
            ADMIN_TOKEN,
            json!({"previous_client_secret_expires_at": far}),
        )
        .await;
    assert_eq!(
        long_grace.status,
        StatusCode::BAD_REQUEST,
        "{}",
        long_grace.body
    );
    assert_eq!(
        long_grace.body["errors"][0]["source"]["pointer"],
        "/previous_client_secret_expires_at"
    );
    let sdk_example = json!({"name": "n", "client_secret_version": 1, "duration": "8760h",
        "enabled": true, "previous_client_secret_expires_at": "2030-01-01T00:00:00+00:00"});
    let accepted = server.post(&base, ADMIN_TOKEN, sdk_example).await;
    assert_eq!(accepted.status, StatusCode::CREATED, "{}", accepted.body);
    assert_eq!(
        accepted.result()["previous_client_secret_expires_at"],
        Value::Null
    );
    for bad in ["per_page=0", "per_page=1001", "page=0", "per_page=x"] {
        let reply = server.get(&format!("{base}?{bad}"), ADMIN_TOKEN).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reply.error_code(), 12091, "{bad}");
    }
    for path in [
        format!("{base}/not-a-uuid"),
        format!("{base}/{}", ServiceTokenId::generate()),
    ] {
        let reply = server.get(&path, ADMIN_TOKEN).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.error_code(), 12130);
        let rotate = server
            .post(&format!("{path}/rotate"), ADMIN_TOKEN, json!({}))
            .await;
        assert_eq!(rotate.status, StatusCode::NOT_FOUND, "{path}");
    }
    // Another account's token is not found through this one.
    let other = server.create_account("Other").await;
    let foreign = server
        .get(
            &format!("/accounts/{other}/access/service_tokens/{id}"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
}

async fn only_the_write_group_writes(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let base = format!("/accounts/{account}/access/service_tokens");
    let created = server.post(&base, ADMIN_TOKEN, json!({"name": "t"})).await;
    let id = text(&created.result()["id"]);
    let (_, reader) = server.create_token(&account, &[SERVICE_TOKENS_READ]).await;
    let (_, apps_writer) = server.create_token(&account, &[APPS_WRITE]).await;
    let (_, writer) = server.create_token(&account, &[SERVICE_TOKENS_WRITE]).await;

    assert_eq!(server.get(&base, &reader).await.status, StatusCode::OK);
    assert_eq!(
        server.get(&format!("{base}/{id}"), &reader).await.status,
        StatusCode::OK
    );
    let writes = |token: String| {
        let (server, base, id) = (&server, base.clone(), id.clone());
        async move {
            vec![
                server.post(&base, &token, json!({"name": "n"})).await,
                server
                    .put(&format!("{base}/{id}"), &token, json!({"name": "n"}))
                    .await,
                server
                    .post(&format!("{base}/{id}/refresh"), &token, json!({}))
                    .await,
                server
                    .post(&format!("{base}/{id}/rotate"), &token, json!({}))
                    .await,
                server.delete(&format!("{base}/{id}"), &token).await,
            ]
        }
    };
    for token in [reader.clone(), apps_writer.clone()] {
        for reply in writes(token).await {
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
            assert_eq!(reply.error_code(), 10000);
        }
    }
    assert_eq!(
        server.get(&base, &apps_writer).await.status,
        StatusCode::FORBIDDEN
    );
    let statuses: Vec<StatusCode> = writes(writer.clone())
        .await
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses,
        [
            StatusCode::CREATED,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK
        ]
    );
    // The write group reads too; another account's token reads nothing here.
    assert_eq!(server.get(&base, &writer).await.status, StatusCode::OK);
    let other = server.create_account("Other").await;
    let (_, foreign) = server.create_token(&other, &[SERVICE_TOKENS_WRITE]).await;
    assert_eq!(
        server.get(&base, &foreign).await.status,
        StatusCode::FORBIDDEN
    );
}

async fn concurrent_rotations_leave_one_secret(db: TestDb) {
    let server = Server::start(&db).await;
    let store = open(&db).await;
    let account = server.create_account("Home").await;
    let account_id = AccountId::parse(&account).unwrap_or_else(AccountId::generate);
    let base = format!("/accounts/{account}/access/service_tokens");
    let created = server.post(&base, ADMIN_TOKEN, json!({"name": "t"})).await;
    let id = text(&created.result()["id"]);
    let client_id = text(&created.result()["client_id"]);
    let first = text(&created.result()["client_secret"]);

    let rotations = (0..16)
        .map(|_| {
            server
                .http
                .post(server.url(&format!("{base}/{id}/rotate")))
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({}))
        })
        .collect();
    let mut secrets = Vec::new();
    for reply in burst(rotations).await {
        match reply.status {
            StatusCode::OK => secrets.push(text(&reply.result()["client_secret"])),
            StatusCode::CONFLICT => assert_eq!(reply.error_code(), 12131),
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    assert!(!secrets.is_empty());
    let now = Timestamp::now();
    let mut working = 0;
    for secret in secrets.iter().chain([&first]) {
        if check(&store, &account_id, &credentials(&client_id, secret), now)
            .await
            .is_ok()
        {
            working += 1;
        }
    }
    assert_eq!(working, 1, "{} rotations succeeded", secrets.len());
    let version = server.get(&format!("{base}/{id}"), ADMIN_TOKEN).await;
    assert_eq!(
        version.result()["client_secret_version"],
        json!(1 + secrets.len()),
        "each successful rotation counts once"
    );
}

async fn presented_tokens_are_checked_on_the_store(db: TestDb) {
    let server = Server::start(&db).await;
    let store = open(&db).await;
    let home =
        AccountId::parse(&server.create_account("Home").await).unwrap_or_else(AccountId::generate);
    let other =
        AccountId::parse(&server.create_account("Other").await).unwrap_or_else(AccountId::generate);
    let now = Timestamp::now();
    let new = NewServiceToken {
        account_id: home.clone(),
        name: "job".into(),
        duration: "1h".into(),
        expires_at: Some(now.plus_seconds(3600)),
        enabled: true,
        client_secret_version: 1,
    };
    let (stored, old_secret) = StoredServiceToken::issue(new, now);
    store
        .create_service_token(&stored)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let client_id = stored.token.client_id.clone();

    assert_eq!(check(&store, &home, &HeaderMap::new(), now).await, Ok(None));
    let seen = check(&store, &home, &credentials(&client_id, &old_secret), now).await;
    assert_eq!(
        seen.as_ref()
            .ok()
            .and_then(|t| t.as_ref())
            .map(|t| t.id.clone()),
        Some(stored.token.id.clone())
    );
    let reread = |store: &Store| {
        let (store, home, id) = (store.clone(), home.clone(), stored.token.id.clone());
        async move {
            store
                .find_service_token(&home, &id)
                .await
                .ok()
                .flatten()
                .map(|s| s.token)
        }
    };
    assert_eq!(reread(&store).await.and_then(|t| t.last_seen_at), Some(now));
    // Within the resolution the use is not written again; after it, it is.
    let soon = now.plus_seconds(5);
    let _ = check(&store, &home, &credentials(&client_id, &old_secret), soon).await;
    assert_eq!(reread(&store).await.and_then(|t| t.last_seen_at), Some(now));
    let later = now.plus_seconds(31);
    let _ = check(&store, &home, &credentials(&client_id, &old_secret), later).await;
    assert_eq!(
        reread(&store).await.and_then(|t| t.last_seen_at),
        Some(later)
    );

    assert_eq!(
        check(&store, &other, &credentials(&client_id, &old_secret), now).await,
        Err(Refusal::UnknownClientId),
        "a token opens only its own account"
    );
    assert_eq!(
        check(&store, &home, &credentials(&client_id, "cfast_wrong"), now).await,
        Err(Refusal::WrongSecret)
    );

    // Rotate through the API with a grace period of ten minutes.
    let base = format!("/accounts/{home}/access/service_tokens/{}", stored.token.id);
    let until = Timestamp::now().plus_seconds(600);
    let rotated = server
        .post(
            &format!("{base}/rotate"),
            ADMIN_TOKEN,
            json!({"previous_client_secret_expires_at": until.to_string()}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    assert_eq!(
        rotated.result()["previous_client_secret_expires_at"],
        until.to_string()
    );
    let new_secret = text(&rotated.result()["client_secret"]);
    let now = Timestamp::now();
    for secret in [&old_secret, &new_secret] {
        assert!(
            check(&store, &home, &credentials(&client_id, secret), now)
                .await
                .is_ok()
        );
    }
    let after_grace = until.plus_seconds(1);
    assert_eq!(
        check(
            &store,
            &home,
            &credentials(&client_id, &old_secret),
            after_grace
        )
        .await,
        Err(Refusal::WrongSecret)
    );
    assert!(
        check(
            &store,
            &home,
            &credentials(&client_id, &new_secret),
            after_grace
        )
        .await
        .is_ok()
    );

    // Moving the grace end into the past ends it now.
    let moved = server
        .put(
            &base,
            ADMIN_TOKEN,
            json!({"previous_client_secret_expires_at": "2000-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_eq!(
        check(
            &store,
            &home,
            &credentials(&client_id, &old_secret),
            Timestamp::now().plus_seconds(1)
        )
        .await,
        Err(Refusal::WrongSecret)
    );

    // Expired, then refreshed; disabled refuses even the right secret.
    let expired_at = Timestamp::now().plus_seconds(3601);
    assert_eq!(
        check(
            &store,
            &home,
            &credentials(&client_id, &new_secret),
            expired_at
        )
        .await,
        Err(Refusal::Expired)
    );
    let disabled = server
        .put(&base, ADMIN_TOKEN, json!({"enabled": false}))
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    assert_eq!(
        check(
            &store,
            &home,
            &credentials(&client_id, &new_secret),
            Timestamp::now()
        )
        .await,
        Err(Refusal::Disabled)
    );
    // Deleted: the Client ID is unknown.
    assert_eq!(
        server.delete(&base, ADMIN_TOKEN).await.status,
        StatusCode::OK
    );
    assert_eq!(
        check(
            &store,
            &home,
            &credentials(&client_id, &new_secret),
            Timestamp::now()
        )
        .await,
        Err(Refusal::UnknownClientId)
    );
}

async fn service_auth_policies_admit_presented_tokens(db: TestDb) {
    let server = Server::start(&db).await;
    let store = open(&db).await;
    let account = server.create_account("Home").await;
    let account_id = AccountId::parse(&account).unwrap_or_else(AccountId::generate);
    let tokens = format!("/accounts/{account}/access/service_tokens");
    let policies = format!("/accounts/{account}/access/policies");
    let mut made = Vec::new();
    for name in ["deploy", "monitor"] {
        let reply = server
            .post(&tokens, ADMIN_TOKEN, json!({"name": name}))
            .await;
        let r = reply.result();
        made.push((
            text(&r["id"]),
            text(&r["client_id"]),
            text(&r["client_secret"]),
        ));
    }
    let (deploy_id, deploy_client, deploy_secret) = made[0].clone();
    let (_, monitor_client, monitor_secret) = made[1].clone();
    let other = server.create_account("Other").await;
    let foreign = server
        .post(
            &format!("/accounts/{other}/access/service_tokens"),
            ADMIN_TOKEN,
            json!({"name": "x"}),
        )
        .await;
    let foreign_id = text(&foreign.result()["id"]);

    let rule = |id: &str| json!({"service_token": {"token_id": id}});
    for (body, pointer) in [
        (
            json!({"name": "p", "decision": "allow", "include": [rule(&deploy_id)]}),
            "/decision",
        ),
        (
            json!({"name": "p", "decision": "bypass", "include": [{"any_valid_service_token": {}}]}),
            "/decision",
        ),
        (
            json!({"name": "p", "decision": "non_identity", "include": [rule("deploy")]}),
            "/include/0",
        ),
        (
            json!({"name": "p", "decision": "non_identity", "include": [rule(&foreign_id)]}),
            "/include/0/service_token/token_id",
        ),
        (
            json!({"name": "p", "decision": "non_identity", "include": [{"everyone": {}}], "require": [rule(&ServiceTokenId::generate().to_string())]}),
            "/require/0/service_token/token_id",
        ),
        (
            json!({"name": "p", "decision": "non_identity", "include": [{"service_token": {}}]}),
            "/include/0/service_token",
        ),
    ] {
        let reply = server.post(&policies, ADMIN_TOKEN, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.body
        );
        assert_eq!(reply.error_code(), 12002, "{body}");
        assert_eq!(
            reply.body["errors"][0]["source"]["pointer"], pointer,
            "{body}: {}",
            reply.body
        );
    }

    let only_deploy = server
        .post(&policies, ADMIN_TOKEN, json!({"name": "Deploy bot", "decision": "non_identity", "include": [rule(&deploy_id.to_uppercase())]}))
        .await;
    assert_eq!(
        only_deploy.status,
        StatusCode::CREATED,
        "{}",
        only_deploy.body
    );
    assert_eq!(only_deploy.result()["decision"], "non_identity");
    let people = server
        .post(
            &policies,
            ADMIN_TOKEN,
            json!({"name": "Staff", "decision": "allow", "include": [{"everyone": {}}]}),
        )
        .await;
    let policy_ids = [
        text(&only_deploy.result()["id"]),
        text(&people.result()["id"]),
    ];
    let app = server
        .post(
            &format!("/accounts/{account}/access/apps"),
            ADMIN_TOKEN,
            json!({"type": "self_hosted", "domain": "api.example.com", "policies": policy_ids}),
        )
        .await;
    assert_eq!(app.status, StatusCode::CREATED, "{}", app.body);
    let app_id = AppId::parse(app.result()["id"].as_str().unwrap_or_default())
        .unwrap_or_else(AppId::generate);

    // What a protected request would do: authenticate the presented token,
    // then evaluate the application's policies for it.
    let verdict = |client: String, secret: String| {
        let (store, account_id, app_id) = (store.clone(), account_id.clone(), app_id.clone());
        async move {
            let app = store.find_app(&account_id, &app_id).await.ok().flatten();
            let app = app.unwrap_or_else(|| panic!("app"));
            let policies: Vec<_> = store
                .app_policies(&app)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|(p, _)| p)
                .collect();
            // A refused token is answered before any policy (401 or sign-in).
            let presented = credentials(&client, &secret);
            let Ok(Some(token)) = check(&store, &account_id, &presented, Timestamp::now()).await
            else {
                return None;
            };
            let requester = Requester {
                email: None,
                ip: IpAddr::from([203, 0, 113, 7]),
                country: None,
                idp_id: None,
                groups: Vec::new(),
                service_token: Some(token.id),
            };
            match evaluate(&policies, &requester) {
                Verdict::Allowed(p) => Some(p.name.clone()),
                Verdict::Bypassed(_) | Verdict::Denied(_) => None,
            }
        }
    };
    assert_eq!(
        verdict(deploy_client.clone(), deploy_secret.clone())
            .await
            .as_deref(),
        Some("Deploy bot")
    );
    assert_eq!(
        verdict(monitor_client.clone(), monitor_secret.clone()).await,
        None,
        "not named, and allow is for people"
    );
    assert_eq!(
        verdict(deploy_client.clone(), monitor_secret.clone()).await,
        None,
        "wrong secret"
    );

    // Any valid token of the account, as a separate service-auth policy.
    let any = server
        .post(&policies, ADMIN_TOKEN, json!({"name": "Any bot", "decision": "non_identity", "include": [{"any_valid_service_token": {}}]}))
        .await;
    assert_eq!(any.status, StatusCode::CREATED, "{}", any.body);
    let with_any = json!({"type": "self_hosted", "domain": "api.example.com", "policies": [text(&any.result()["id"])]});
    let replaced = server
        .put(
            &format!("/accounts/{account}/access/apps/{app_id}"),
            ADMIN_TOKEN,
            with_any,
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(
        verdict(monitor_client, monitor_secret).await.as_deref(),
        Some("Any bot")
    );
    assert_eq!(verdict(deploy_client, "cfast_nope".into()).await, None);
}
