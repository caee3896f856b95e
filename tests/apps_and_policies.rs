use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{ADMIN_TOKEN, Server, TestDb, burst};

const APPS_READ: &str = "7ea222f6d5064cfa89ea366d7c1fee89";

crate::on_each_backend!(
    policies_lifecycle,
    applications_lifecycle,
    a_domain_belongs_to_one_application_across_accounts,
);

async fn policies_lifecycle(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let policies = format!("/accounts/{account}/access/policies");
    let body = json!({
        "name": "Staff", "decision": "allow",
        "include": [{"email_domain": {"domain": "example.com"}}, {"email": {"email": "guest@partner.org"}}],
        "exclude": [{"email": {"email": "intern@example.com"}}],
        "require": [{"ip": {"ip": "10.0.0.0/8"}}, {"geo": {"country_code": "DE"}}],
        "session_duration": "8h"
    });
    let created = server.post(&policies, ADMIN_TOKEN, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let policy = created.result().clone();
    assert_eq!(
        policy["include"][0],
        json!({"email_domain": {"domain": "example.com"}})
    );
    assert_eq!(policy["require"][0], json!({"ip": {"ip": "10.0.0.0/8"}}));
    assert_eq!(policy["reusable"], true);
    assert_eq!(policy["app_count"], 0);
    assert_eq!(policy["session_duration"], "8h");
    assert_eq!(policy["account_id"], account.as_str());
    let id = policy["id"].as_str().unwrap_or_default().to_string();

    let mut sent_back = policy.clone();
    sent_back["name"] = json!("Staff only");
    sent_back["session_duration"] = Value::Null;
    let updated = server
        .put(&format!("{policies}/{id}"), ADMIN_TOKEN, sent_back)
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.result()["name"], "Staff only");
    assert_eq!(updated.result()["session_duration"], Value::Null);

    for (body, pointer) in [
        (
            json!({"name": "x", "decision": "allow", "include": []}),
            "/include",
        ),
        (
            json!({"name": "x", "decision": "maybe", "include": [{"everyone": {}}]}),
            "/decision",
        ),
        (
            json!({"name": "x", "decision": "allow", "include": [{"okta": {"name": "eng"}}]}),
            "/include/0",
        ),
        (
            json!({"name": "x", "decision": "allow", "include": [{"ip": {"ip": "300.1.1.1/8"}}]}),
            "/include/0/ip/ip",
        ),
        (
            json!({"name": "x", "decision": "bypass", "include": [{"email": {"email": "a@b.c"}}]}),
            "/decision",
        ),
        (
            json!({"name": "x", "decision": "allow", "include": [{"everyone": {}}], "session_duration": "forever"}),
            "/session_duration",
        ),
        (
            json!({"name": "x", "decision": "allow", "include": [{"everyone": {}}], "approval_required": true}),
            "/approval_required",
        ),
    ] {
        let reply = server.post(&policies, ADMIN_TOKEN, body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.error_code(), 12002, "{body}");
        assert_eq!(
            reply.body["errors"][0]["source"]["pointer"], pointer,
            "{body}: {}",
            reply.body
        );
    }

    let listed = server.get(&policies, ADMIN_TOKEN).await;
    assert_eq!(listed.body["result_info"]["total_count"], 1);
    assert_eq!(listed.body["result_info"]["per_page"], 100);
    let deleted = server
        .delete(&format!("{policies}/{id}"), ADMIN_TOKEN)
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    assert_eq!(
        server
            .get(&format!("{policies}/{id}"), ADMIN_TOKEN)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

async fn applications_lifecycle(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let base = format!("/accounts/{account}/access");
    let pin = server
        .post(
            &format!("{base}/identity_providers"),
            ADMIN_TOKEN,
            json!({"name": "PIN", "type": "onetimepin", "config": {}}),
        )
        .await;
    let pin_id = pin.result()["id"].as_str().unwrap_or_default().to_string();
    let mut policy_ids = Vec::new();
    for (name, decision) in [("Deny contractors", "deny"), ("Allow staff", "allow")] {
        let reply = server
            .post(&format!("{base}/policies"), ADMIN_TOKEN, json!({"name": name, "decision": decision, "include": [{"email_domain": {"domain": "example.com"}}]}))
            .await;
        policy_ids.push(
            reply.result()["id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }

    let created = server
        .post(&format!("{base}/apps"), ADMIN_TOKEN, json!({
            "type": "self_hosted", "name": "Wiki", "domain": "Wiki.Example.com/docs",
            "session_duration": "12h", "allowed_idps": [pin_id], "auto_redirect_to_identity": true,
            "policies": [{"id": policy_ids[1], "precedence": 2}, {"id": policy_ids[0], "precedence": 1}],
            "same_site_cookie_attribute": "lax"
        }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let app = created.result().clone();
    let app_id = app["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(app["type"], "self_hosted");
    assert_eq!(app["domain"], "wiki.example.com/docs");
    assert!(
        app["aud"]
            .as_str()
            .is_some_and(|a| a.len() == 64 && a.bytes().all(|b| b.is_ascii_hexdigit()))
    );
    assert_eq!(app["session_duration"], "12h");
    assert_eq!(app["http_only_cookie_attribute"], true);
    assert_eq!(
        app["destinations"],
        json!([{"type": "public", "uri": "wiki.example.com/docs"}])
    );
    let order: Vec<&str> = app["policies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        order,
        ["Deny contractors", "Allow staff"],
        "policies in precedence order"
    );
    assert_eq!(app["policies"][0]["precedence"], 1);
    assert_eq!(app["policies"][0]["app_count"], 1);

    let in_use = server
        .delete(&format!("{base}/policies/{}", policy_ids[0]), ADMIN_TOKEN)
        .await;
    assert_eq!(in_use.status, StatusCode::CONFLICT, "a policy in use stays");

    let taken = server
        .post(
            &format!("{base}/apps"),
            ADMIN_TOKEN,
            json!({"type": "self_hosted", "domain": "wiki.example.com/docs"}),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert_eq!(taken.error_code(), 11010);
    for (body, pointer) in [
        (json!({"type": "saas", "domain": "x.example.com"}), "/type"),
        (json!({"type": "self_hosted"}), "/domain"),
        (
            json!({"type": "self_hosted", "domain": "https://x.example.com"}),
            "/domain",
        ),
        (
            json!({"type": "self_hosted", "domain": "x.example.com", "session_duration": "1 day"}),
            "/session_duration",
        ),
        (
            json!({"type": "self_hosted", "domain": "x.example.com", "policies": ["00000000-0000-4000-8000-000000000000"]}),
            "/policies/0",
        ),
        (
            json!({"type": "self_hosted", "domain": "x.example.com", "policies": [{"name": "inline", "decision": "allow", "include": [{"everyone": {}}]}]}),
            "/policies/0",
        ),
        (
            json!({"type": "self_hosted", "domain": "x.example.com", "auto_redirect_to_identity": true}),
            "/auto_redirect_to_identity",
        ),
    ] {
        let reply = server
            .post(&format!("{base}/apps"), ADMIN_TOKEN, body.clone())
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.body
        );
        assert_eq!(
            reply.body["errors"][0]["source"]["pointer"], pointer,
            "{body}: {}",
            reply.body
        );
    }

    let replaced = server
        .put(&format!("{base}/apps/{app_id}"), ADMIN_TOKEN, json!({"type": "self_hosted", "name": "Wiki 2", "domain": "wiki.example.com/docs", "policies": [policy_ids[1]]}))
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(replaced.result()["aud"], app["aud"], "aud stays");
    assert_eq!(replaced.result()["session_duration"], "24h");
    assert_eq!(
        replaced.result()["policies"].as_array().map(Vec::len),
        Some(1)
    );

    let by_aud = server
        .get(
            &format!(
                "{base}/apps?aud={}",
                app["aud"].as_str().unwrap_or_default()
            ),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(by_aud.result()[0]["id"], app_id.as_str());
    let by_name = server
        .get(&format!("{base}/apps?name=wiki+2&exact=true"), ADMIN_TOKEN)
        .await;
    assert_eq!(by_name.result().as_array().map(Vec::len), Some(1));
    let partial = server
        .get(&format!("{base}/apps?name=wik&exact=true"), ADMIN_TOKEN)
        .await;
    assert_eq!(partial.result(), &json!([]));
    let search = server
        .get(&format!("{base}/apps?search=example.com"), ADMIN_TOKEN)
        .await;
    assert_eq!(search.result().as_array().map(Vec::len), Some(1));

    let (_, reader) = server.create_token(&account, &[APPS_READ]).await;
    assert_eq!(
        server
            .get(&format!("{base}/apps/{app_id}"), &reader)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        server
            .call(
                "POST",
                &format!("{base}/apps/{app_id}/revoke_tokens"),
                &reader,
                None
            )
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let revoked = server
        .call(
            "POST",
            &format!("{base}/apps/{app_id}/revoke_tokens"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);

    assert_eq!(
        server
            .delete(&format!("{base}/apps/{app_id}"), ADMIN_TOKEN)
            .await
            .status,
        StatusCode::ACCEPTED
    );
    let gone = server
        .get(&format!("{base}/apps/{app_id}"), ADMIN_TOKEN)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error_code(), 11021);
    assert_eq!(
        server
            .delete(&format!("{base}/policies/{}", policy_ids[0]), ADMIN_TOKEN)
            .await
            .status,
        StatusCode::ACCEPTED
    );
}

/// Whatever account asks, and however it names the domain (as `domain` or
/// among `self_hosted_domains`, in a burst of concurrent creates), one
/// domain is claimed by one application.
async fn a_domain_belongs_to_one_application_across_accounts(db: TestDb) {
    let server = Server::start(&db).await;
    let victim = server.create_account("Victim").await;
    let squatter = server.create_account("Squatter").await;
    let app = |name: &str, domain: &str, more: &[&str]| {
        json!({"type": "self_hosted", "name": name, "domain": domain,
               "self_hosted_domains": more, "policies": []})
    };
    let apps_of = |account: &str| format!("/accounts/{account}/access/apps");
    let owned = server
        .post(
            &apps_of(&victim),
            ADMIN_TOKEN,
            app("Bank", "bank.example.com", &["pay.example.com"]),
        )
        .await;
    assert!(owned.status.is_success(), "{}", owned.body);

    for (domain, more) in [
        ("other.example.com", vec!["bank.example.com"]),
        ("other.example.com", vec!["PAY.example.com"]),
        ("pay.example.com", vec![]),
    ] {
        let taken = server
            .post(
                &apps_of(&squatter),
                ADMIN_TOKEN,
                app("Squat", domain, &more),
            )
            .await;
        assert_eq!(
            taken.status,
            StatusCode::CONFLICT,
            "{domain} {more:?}: {}",
            taken.body
        );
        assert_eq!(taken.error_code(), 11010);
    }
    // An update cannot take one either, and a refused write changes nothing.
    let mine = server
        .post(
            &apps_of(&squatter),
            ADMIN_TOKEN,
            app("Mine", "mine.example.com", &[]),
        )
        .await;
    let mine_id = mine.result()["id"].as_str().unwrap_or_default().to_string();
    let grab = server
        .put(
            &format!("{}/{mine_id}", apps_of(&squatter)),
            ADMIN_TOKEN,
            app("Mine", "mine.example.com", &["bank.example.com"]),
        )
        .await;
    assert_eq!(grab.status, StatusCode::CONFLICT, "{}", grab.body);
    let kept = server
        .get(&format!("{}/{mine_id}", apps_of(&squatter)), ADMIN_TOKEN)
        .await;
    assert_eq!(kept.result()["domain"], json!("mine.example.com"));
    assert_eq!(kept.result()["self_hosted_domains"], json!([]));

    // Twelve concurrent creates of one new domain from two accounts: one wins.
    let creates = (0..12)
        .map(|i| {
            let account = if i % 2 == 0 { &victim } else { &squatter };
            server
                .http
                .post(server.url(&apps_of(account)))
                .bearer_auth(ADMIN_TOKEN)
                .json(&app(&format!("Race {i}"), "race.example.com", &[]))
        })
        .collect();
    let replies = burst(creates).await;
    let won = replies.iter().filter(|r| r.status.is_success()).count();
    assert_eq!(won, 1);
    assert!(
        replies
            .iter()
            .all(|r| r.status.is_success() || r.status == StatusCode::CONFLICT)
    );

    // A host belongs to one account once any path on it is claimed: no
    // other account may claim another path on it, nor the bare host, nor
    // the same path spelt with a default port.
    let paths = server
        .post(
            &apps_of(&victim),
            ADMIN_TOKEN,
            app("Admin", "paths.example.com/admin", &[]),
        )
        .await;
    assert!(paths.status.is_success(), "{}", paths.body);
    for (domain, more) in [
        ("paths.example.com/a", vec![]),
        ("paths.example.com", vec![]),
        ("paths.example.com:80/admin", vec![]),
        ("free.example.com", vec!["paths.example.com/other"]),
    ] {
        let taken = server
            .post(
                &apps_of(&squatter),
                ADMIN_TOKEN,
                app("Squat", domain, &more),
            )
            .await;
        assert_eq!(
            taken.status,
            StatusCode::CONFLICT,
            "{domain} {more:?}: {}",
            taken.body
        );
    }
    let same_account = server
        .post(
            &apps_of(&victim),
            ADMIN_TOKEN,
            app("Docs", "paths.example.com/docs", &[]),
        )
        .await;
    assert!(same_account.status.is_success(), "{}", same_account.body);
    let dotted = server
        .post(
            &apps_of(&victim),
            ADMIN_TOKEN,
            app("Dots", "paths.example.com/./x", &[]),
        )
        .await;
    assert_eq!(dotted.status, StatusCode::BAD_REQUEST, "{}", dotted.body);

    // Deleting the application frees its domains.
    let bank_id = owned.result()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let deleted = server
        .delete(&format!("{}/{bank_id}", apps_of(&victim)), ADMIN_TOKEN)
        .await;
    assert!(deleted.status.is_success(), "{}", deleted.body);
    let reused = server
        .post(
            &apps_of(&squatter),
            ADMIN_TOKEN,
            app("Now mine", "pay.example.com", &[]),
        )
        .await;
    assert!(reused.status.is_success(), "{}", reused.body);
}
