use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{ADMIN_TOKEN, Server, TestDb, burst, token_body};

const TOKENS_READ: &str = "eb56a6953c034b9d97dd838155666f06";
const TOKENS_WRITE: &str = "5bc3f8b21c554832afc660159ab75fa4";
const SETTINGS_READ: &str = "c1fde68c7bcc44588cbb6ddbc16d6480";
const AUDIT_LOGS_READ: &str = "b05b28e839c54467a7d6cba5d3abb5a3";

crate::on_each_backend!(
    token_life_from_creation_to_deletion,
    a_token_never_grants_more_than_its_creator,
    a_token_cannot_take_over_a_stronger_token,
    concurrent_rolls_leave_exactly_one_secret,
    read_group_reads_but_does_not_write,
    deny_beats_allow,
    time_and_address_conditions,
    listing_pages_and_hides_expired_tokens,
    invalid_token_requests_name_the_field,
    permission_groups_are_listed_and_filtered,
    a_token_deleted_through_one_process_stops_working_on_another,
);

fn update_body(base: &Value, changes: Value) -> Value {
    let mut body = json!({"name": base["name"], "policies": base["policies"]});
    if let (Some(body), Some(changes)) = (body.as_object_mut(), changes.as_object()) {
        body.extend(changes.clone());
    }
    body
}

async fn token_life_from_creation_to_deletion(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let foreign = server.create_account("Foreign").await;

    let created = server
        .post(
            &format!("/accounts/{account}/tokens"),
            ADMIN_TOKEN,
            token_body("ci", &account, &[TOKENS_WRITE, SETTINGS_READ]),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let token = created.result().clone();
    let (id, secret) = (
        token["id"].as_str().unwrap_or_default(),
        token["value"].as_str().unwrap_or_default(),
    );
    assert!(secret.starts_with("cfat_"));
    assert_eq!(token["status"], "active");
    assert_eq!(
        token["policies"][0]["permission_groups"][0]["name"],
        "Account API Tokens Write"
    );
    assert_eq!(token["policies"][0]["id"].as_str().map(str::len), Some(32));

    // Used on its own account: it works, and the use is recorded; the secret is never shown again.
    let listed = server
        .get(&format!("/accounts/{account}/tokens"), secret)
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    let fetched = server
        .get(&format!("/accounts/{account}/tokens/{id}"), secret)
        .await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert!(fetched.result().get("value").is_none());
    assert!(fetched.result()["last_used_on"].is_string());
    assert_eq!(
        server
            .get(&format!("/accounts/{account}"), secret)
            .await
            .status,
        StatusCode::OK
    );

    // Refused on another account, exactly like a missing permission.
    for path in [
        format!("/accounts/{foreign}"),
        format!("/accounts/{foreign}/tokens"),
    ] {
        let refused = server.get(&path, secret).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(refused.error_code(), 10000);
    }
    let unknown_account = server
        .get("/accounts/0123456789abcdef0123456789abcdef/tokens", secret)
        .await;
    assert_eq!(unknown_account.status, StatusCode::FORBIDDEN);

    let verify = server
        .get(&format!("/accounts/{account}/tokens/verify"), secret)
        .await;
    assert_eq!(verify.result(), &json!({"id": id, "status": "active"}));
    assert_eq!(verify.body["messages"][0]["code"], 10000);

    // Expire it: refused everywhere, and verify says why.
    let path = format!("/accounts/{account}/tokens/{id}");
    let expire = server
        .put(
            &path,
            ADMIN_TOKEN,
            update_body(&token, json!({"expires_on": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(expire.status, StatusCode::OK, "{}", expire.body);
    assert_eq!(expire.result()["status"], "expired");
    let refused = server
        .get(&format!("/accounts/{account}/tokens"), secret)
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.error_code(), 1000);
    let verify = server
        .get(&format!("/accounts/{account}/tokens/verify"), secret)
        .await;
    assert_eq!(verify.result()["status"], "expired");
    assert_eq!(verify.result()["expires_on"], "2020-01-01T00:00:00Z");

    // Disable it (a full replace without expires_on lifts the expiry).
    let disable = server
        .put(
            &path,
            ADMIN_TOKEN,
            update_body(&token, json!({"status": "disabled"})),
        )
        .await;
    assert_eq!(disable.result()["status"], "disabled");
    assert!(disable.result().get("expires_on").is_none());
    assert_eq!(
        server
            .get(&format!("/accounts/{account}/tokens"), secret)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let verify = server
        .get(&format!("/accounts/{account}/tokens/verify"), secret)
        .await;
    assert_eq!(verify.result()["status"], "disabled");
    let enable = server
        .put(
            &path,
            ADMIN_TOKEN,
            update_body(&token, json!({"status": "active"})),
        )
        .await;
    assert_eq!(enable.result()["status"], "active");
    assert_eq!(
        server
            .get(&format!("/accounts/{account}/tokens"), secret)
            .await
            .status,
        StatusCode::OK
    );

    // Roll it: the old secret dies at once, the new one works, the id stays.
    let rolled = server
        .call("PUT", &format!("{path}/value"), secret, None)
        .await;
    assert_eq!(rolled.status, StatusCode::OK, "{}", rolled.body);
    let new_secret = rolled.result().as_str().unwrap_or_default().to_string();
    assert!(new_secret.starts_with("cfat_") && new_secret != secret);
    assert_eq!(
        server
            .get(&format!("/accounts/{account}/tokens"), secret)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let still = server.get(&path, &new_secret).await;
    assert_eq!(still.result()["id"], id);

    // Delete it: gone for good.
    let deleted = server.delete(&path, ADMIN_TOKEN).await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.result(), &json!({"id": id}));
    assert_eq!(
        server
            .get(&format!("/accounts/{account}/tokens"), &new_secret)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let missing = server.get(&path, ADMIN_TOKEN).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), 1003);
}

async fn a_token_never_grants_more_than_its_creator(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let (_, writer) = server.create_token(&account, &[TOKENS_WRITE]).await;
    let tokens = format!("/accounts/{account}/tokens");

    let narrower = server
        .post(
            &tokens,
            &writer,
            token_body("child", &account, &[TOKENS_WRITE]),
        )
        .await;
    assert_eq!(narrower.status, StatusCode::OK, "{}", narrower.body);
    let wider = server
        .post(
            &tokens,
            &writer,
            token_body("escalate", &account, &[AUDIT_LOGS_READ]),
        )
        .await;
    assert_eq!(wider.status, StatusCode::FORBIDDEN);
    assert_eq!(wider.error_code(), 10000);

    let child = narrower.result()["value"].as_str().unwrap_or_default();
    assert_eq!(server.get(&tokens, child).await.status, StatusCode::OK);
}

/// Rolling, rewriting or deleting a token that holds a group the caller
/// lacks would hand the caller that group (the rolled secret) or let it
/// strip another's grants; all three are refused and the target keeps working.
async fn a_token_cannot_take_over_a_stronger_token(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let (_, writer) = server.create_token(&account, &[TOKENS_WRITE]).await;
    let (strong_id, strong) = server
        .create_token(&account, &[TOKENS_WRITE, AUDIT_LOGS_READ])
        .await;
    let tokens = format!("/accounts/{account}/tokens");
    let target = format!("{tokens}/{strong_id}");

    let roll = server
        .put(&format!("{target}/value"), &writer, json!({}))
        .await;
    assert_eq!(roll.status, StatusCode::FORBIDDEN, "{}", roll.body);
    assert_eq!(roll.error_code(), 10000);

    let rewrite = server
        .put(
            &target,
            &writer,
            token_body("weakened", &account, &[TOKENS_WRITE]),
        )
        .await;
    assert_eq!(rewrite.status, StatusCode::FORBIDDEN, "{}", rewrite.body);
    let delete = server.delete(&target, &writer).await;
    assert_eq!(delete.status, StatusCode::FORBIDDEN, "{}", delete.body);

    let unchanged = server.get(&target, ADMIN_TOKEN).await;
    assert_eq!(unchanged.result()["name"], json!("test token"));
    assert_eq!(
        unchanged.result()["policies"][0]["permission_groups"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let verify = format!("{tokens}/verify");
    assert_eq!(server.get(&verify, &strong).await.status, StatusCode::OK);

    // A token may still manage one whose grants it holds itself.
    let (peer_id, _) = server.create_token(&account, &[TOKENS_WRITE]).await;
    let peer_roll = server
        .put(&format!("{tokens}/{peer_id}/value"), &writer, json!({}))
        .await;
    assert_eq!(peer_roll.status, StatusCode::OK, "{}", peer_roll.body);
    let admin_deletes = server.delete(&target, ADMIN_TOKEN).await;
    assert_eq!(
        admin_deletes.status,
        StatusCode::OK,
        "{}",
        admin_deletes.body
    );
}

/// Concurrent rolls of one token: each answer that succeeded handed out a
/// secret, and exactly one of those secrets works afterwards.
async fn concurrent_rolls_leave_exactly_one_secret(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let (id, _) = server.create_token(&account, &[TOKENS_READ]).await;
    let roll_path = format!("/accounts/{account}/tokens/{id}/value");
    let rolls = (0..24)
        .map(|_| {
            server
                .http
                .put(server.url(&roll_path))
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({}))
        })
        .collect();
    let replies = burst(rolls).await;
    let mut secrets = Vec::new();
    for reply in &replies {
        match reply.status {
            StatusCode::OK => secrets.push(reply.result().as_str().unwrap_or_default().to_string()),
            StatusCode::CONFLICT => assert_eq!(reply.error_code(), 1001),
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    assert!(!secrets.is_empty());
    let verify = format!("/accounts/{account}/tokens/verify");
    let mut working = 0;
    for secret in &secrets {
        if server.get(&verify, secret).await.status == StatusCode::OK {
            working += 1;
        }
    }
    assert_eq!(working, 1, "{} rolls succeeded", secrets.len());
}

async fn read_group_reads_but_does_not_write(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let (id, reader) = server.create_token(&account, &[TOKENS_READ]).await;
    let tokens = format!("/accounts/{account}/tokens");
    assert_eq!(server.get(&tokens, &reader).await.status, StatusCode::OK);
    assert_eq!(
        server.get(&format!("{tokens}/{id}"), &reader).await.status,
        StatusCode::OK
    );
    let create = server
        .post(&tokens, &reader, token_body("x", &account, &[TOKENS_READ]))
        .await;
    assert_eq!(create.status, StatusCode::FORBIDDEN);
    let delete = server.delete(&format!("{tokens}/{id}"), &reader).await;
    assert_eq!(delete.status, StatusCode::FORBIDDEN);
    let roll = server
        .call("PUT", &format!("{tokens}/{id}/value"), &reader, None)
        .await;
    assert_eq!(roll.status, StatusCode::FORBIDDEN);
    assert_eq!(
        server
            .get(&format!("/accounts/{account}"), &reader)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

async fn deny_beats_allow(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let resource = json!({ format!("com.cloudflare.api.account.{account}"): "*" });
    let body = json!({
        "name": "mixed",
        "policies": [
            {"effect": "allow", "permission_groups": [{"id": TOKENS_READ}], "resources": {"com.cloudflare.api.account.*": "*"}},
            {"effect": "deny", "permission_groups": [{"id": TOKENS_READ}], "resources": resource}
        ]
    });
    let created = server
        .post(&format!("/accounts/{account}/tokens"), ADMIN_TOKEN, body)
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let secret = created.result()["value"].as_str().unwrap_or_default();
    let denied = server
        .get(&format!("/accounts/{account}/tokens"), secret)
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
}

async fn time_and_address_conditions(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let tokens = format!("/accounts/{account}/tokens");
    let with = |extra: Value| {
        let mut body = token_body("conditional", &account, &[TOKENS_READ]);
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        body
    };
    let secret_of = |reply: &crate::common::Reply| {
        reply.result()["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    let later = server
        .post(
            &tokens,
            ADMIN_TOKEN,
            with(json!({"not_before": "2999-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(
        server.get(&tokens, &secret_of(&later)).await.status,
        StatusCode::UNAUTHORIZED
    );

    let elsewhere = server
        .post(
            &tokens,
            ADMIN_TOKEN,
            with(json!({"condition": {"request_ip": {"in": ["10.0.0.0/8"]}}})),
        )
        .await;
    assert_eq!(
        elsewhere.result()["condition"],
        json!({"request_ip": {"in": ["10.0.0.0/8"], "not_in": []}})
    );
    let refused = server.get(&tokens, &secret_of(&elsewhere)).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.error_code(), 1000);

    let here = server
        .post(&tokens, ADMIN_TOKEN, with(json!({"condition": {"request.ip": {"in": ["127.0.0.0/8"], "not_in": ["127.0.0.2"]}}})))
        .await;
    assert_eq!(here.status, StatusCode::OK, "{}", here.body);
    assert_eq!(
        here.result()["condition"]["request_ip"]["not_in"],
        json!(["127.0.0.2/32"])
    );
    assert_eq!(
        server.get(&tokens, &secret_of(&here)).await.status,
        StatusCode::OK
    );

    let carved = server
        .post(&tokens, ADMIN_TOKEN, with(json!({"condition": {"request_ip": {"in": ["127.0.0.0/8"], "not_in": ["127.0.0.1/32"]}}})))
        .await;
    assert_eq!(
        server.get(&tokens, &secret_of(&carved)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn listing_pages_and_hides_expired_tokens(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let tokens = format!("/accounts/{account}/tokens");
    for i in 0..6 {
        let mut body = token_body(&format!("t{i}"), &account, &[TOKENS_READ]);
        if i == 5 {
            body["expires_on"] = json!("2021-06-01T12:00:00Z");
        }
        assert_eq!(
            server.post(&tokens, ADMIN_TOKEN, body).await.status,
            StatusCode::OK
        );
    }
    let page1 = server
        .get(&format!("{tokens}?per_page=5"), ADMIN_TOKEN)
        .await;
    assert_eq!(
        page1.body["result_info"],
        json!({"page": 1, "per_page": 5, "count": 5, "total_count": 5, "total_pages": 1})
    );
    let page2 = server
        .get(&format!("{tokens}?per_page=5&page=2"), ADMIN_TOKEN)
        .await;
    assert_eq!(page2.result(), &json!([]));
    let with_expired = server
        .get(
            &format!("{tokens}?per_page=5&include_expired=true&page=2"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(with_expired.result()[0]["name"], "t5");
    assert_eq!(with_expired.result()[0]["status"], "expired");
    let desc = server
        .get(
            &format!("{tokens}?direction=desc&include_expired=true"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(desc.result()[0]["name"], "t5");
    let too_small = server
        .get(&format!("{tokens}?per_page=2"), ADMIN_TOKEN)
        .await;
    assert_eq!(too_small.status, StatusCode::BAD_REQUEST);
    assert!(
        too_small.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("per_page"))
    );
}

async fn invalid_token_requests_name_the_field(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let foreign = server.create_account("Foreign").await;
    let tokens = format!("/accounts/{account}/tokens");
    let cases = [
        (json!({"name": "", "policies": []}), "/name".to_string()),
        (
            json!({"name": "x", "policies": []}),
            "/policies".to_string(),
        ),
        (
            json!({"name": "x", "policies": [{"effect": "permit", "permission_groups": [{"id": TOKENS_READ}], "resources": {}}]}),
            "/policies/0/effect".to_string(),
        ),
        (
            json!({"name": "x", "policies": [{"effect": "allow", "permission_groups": [{"id": "ffffffffffffffffffffffffffffffff"}], "resources": {"com.cloudflare.api.account.*": "*"}}]}),
            "/policies/0/permission_groups/0/id".to_string(),
        ),
        (
            json!({"name": "x", "policies": [{"effect": "allow", "permission_groups": [{"id": TOKENS_READ}], "resources": {format!("com.cloudflare.api.account.{foreign}"): "*"}}]}),
            format!("/policies/0/resources/com.cloudflare.api.account.{foreign}"),
        ),
        (
            json!({"name": "x", "policies": [{"effect": "allow", "permission_groups": [{"id": TOKENS_READ}], "resources": {"com.cloudflare.api.account.*": "read"}}]}),
            "/policies/0/resources/com.cloudflare.api.account.*".to_string(),
        ),
        (
            json!({"name": "x", "policies": [{"effect": "allow", "permission_groups": [{"id": TOKENS_READ}], "resources": {"com.cloudflare.api.account.*": "*"}}], "condition": {"request_ip": {"in": ["10.0.0.0/33"]}}}),
            "/condition/request_ip/in/0".to_string(),
        ),
        (
            json!({"name": "x", "policies": [{"effect": "allow", "permission_groups": [{"id": TOKENS_READ}], "resources": {"com.cloudflare.api.account.*": "*"}}], "expires_on": "tomorrow"}),
            "/expires_on".to_string(),
        ),
        (
            json!({"name": "x", "policies": [{"effect": "allow", "permission_groups": [{"id": TOKENS_READ}], "resources": {"com.cloudflare.api.account.*": "*"}}], "status": "expired"}),
            "/status".to_string(),
        ),
        (
            json!({"name": "x", "policies": [], "owner": "me"}),
            "/owner".to_string(),
        ),
    ];
    for (body, pointer) in cases {
        let reply = server.post(&tokens, ADMIN_TOKEN, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.body
        );
        assert_eq!(reply.error_code(), 1004, "{body}");
        assert_eq!(
            reply.body["errors"][0]["source"]["pointer"], pointer,
            "{body}: {}",
            reply.body
        );
        assert_eq!(
            reply
                .headers
                .get("x-should-retry")
                .and_then(|v| v.to_str().ok()),
            Some("false")
        );
    }
    let listed = server
        .get(&format!("{tokens}?include_expired=true"), ADMIN_TOKEN)
        .await;
    assert_eq!(
        listed.result(),
        &json!([]),
        "nothing was created by a refused request"
    );
}

async fn permission_groups_are_listed_and_filtered(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let (_, reader) = server.create_token(&account, &[TOKENS_READ]).await;
    let path = format!("/accounts/{account}/tokens/permission_groups");
    let all = server.get(&path, &reader).await;
    assert_eq!(all.status, StatusCode::OK);
    let groups = all.result().as_array().cloned().unwrap_or_default();
    let audit = groups
        .iter()
        .find(|g| g["id"] == AUDIT_LOGS_READ)
        .cloned()
        .unwrap_or_default();
    assert_eq!(audit["name"], "Access: Audit Logs Read");
    assert_eq!(audit["scopes"], json!(["com.cloudflare.api.account"]));
    assert!(
        groups
            .iter()
            .all(|g| g["scopes"] != json!(["com.cloudflare.api.user"]))
    );

    let by_name = server
        .get(
            &format!("{path}?name=Access%3A+Apps+and+Policies+Write"),
            &reader,
        )
        .await;
    assert_eq!(
        by_name.result().as_array().map(Vec::len),
        Some(2),
        "account and zone scope"
    );
    let by_both = server
        .get(&format!("{path}?name=Access%3A%20Apps%20and%20Policies%20Write&scope=com.cloudflare.api.account.zone"), &reader)
        .await;
    assert_eq!(
        by_both.result()[0]["id"],
        "959972745952452f8be2452be8cbb9f2"
    );
}

/// Each process holds the tokens it has seen; a deletion through one
/// reaches the other within a second (and the deleting one at once).
async fn a_token_deleted_through_one_process_stops_working_on_another(db: TestDb) {
    let first = Server::start(&db).await;
    let second = Server::start(&db).await;
    let account = first.create_account("Home").await;
    let tokens = format!("/accounts/{account}/tokens");
    let created = first
        .post(
            &tokens,
            ADMIN_TOKEN,
            token_body("ci", &account, &[TOKENS_READ]),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let id = created.result()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let secret = created.result()["value"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for server in [&first, &second] {
        assert_eq!(server.get(&tokens, &secret).await.status, StatusCode::OK);
    }

    let deleted = first.delete(&format!("{tokens}/{id}"), ADMIN_TOKEN).await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(
        first.get(&tokens, &secret).await.status,
        StatusCode::UNAUTHORIZED
    );
    let started = std::time::Instant::now();
    while second.get(&tokens, &secret).await.status != StatusCode::UNAUTHORIZED {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "the other process still took the deleted token after a second"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
