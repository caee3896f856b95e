use reqwest::StatusCode;
use serde_json::json;

use crate::common::{ADMIN_TOKEN, Server, TestDb};

const IDPS_READ: &str = "26bc23f853634eb4bff59983b9064fde";

crate::on_each_backend!(identity_provider_lifecycle);

fn oidc_config() -> serde_json::Value {
    json!({
        "client_id": "accessd", "client_secret": "s3cret",
        "auth_url": "https://idp.example.com/auth", "token_url": "https://idp.example.com/token",
        "certs_url": "https://idp.example.com/jwks", "scopes": ["openid", "email"],
        "claims": ["groups"], "email_claim_name": "email", "pkce_enabled": true
    })
}

async fn identity_provider_lifecycle(db: TestDb) {
    let server = Server::start_with(
        &db,
        &[
            ("ACCESSD_ADMIN_TOKEN", ADMIN_TOKEN),
            ("ACCESSD_PUBLIC_URL", "https://access.example.com/"),
        ],
    )
    .await;
    let account = server.create_account("Home").await;
    let idps = format!("/accounts/{account}/access/identity_providers");

    let pin = server
        .post(
            &idps,
            ADMIN_TOKEN,
            json!({"name": "PIN login", "type": "onetimepin", "config": {}}),
        )
        .await;
    assert_eq!(pin.status, StatusCode::CREATED, "{}", pin.body);
    let pin_id = pin.result()["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        pin.result()["config"],
        json!({"redirect_url": "https://access.example.com/cdn-cgi/access/callback"})
    );
    assert_eq!(pin.result()["scim_config"]["enabled"], false);
    assert!(pin.result()["scim_config"].get("secret").is_none());
    let second_pin = server
        .post(
            &idps,
            ADMIN_TOKEN,
            json!({"name": "Again", "type": "onetimepin", "config": {}}),
        )
        .await;
    assert_eq!(second_pin.status, StatusCode::CONFLICT);

    let oidc = server
        .post(&idps, ADMIN_TOKEN, json!({"name": "Corp SSO", "type": "oidc", "config": oidc_config(),
            "scim_config": {"enabled": true, "user_deprovision": true, "seat_deprovision": true, "identity_update_behavior": "reauth"}}))
        .await;
    assert_eq!(oidc.status, StatusCode::CREATED, "{}", oidc.body);
    let created = oidc.result().clone();
    let oidc_id = created["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        created["config"]["client_secret"], "**********",
        "never echoed"
    );
    assert_eq!(created["config"]["client_id"], "accessd");
    assert_eq!(
        created["scim_config"]["scim_base_url"],
        format!("https://access.example.com/scim/v2/{oidc_id}")
    );
    assert!(
        created["scim_config"]["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("scim_")),
        "shown once"
    );
    let fetched = server.get(&format!("{idps}/{oidc_id}"), ADMIN_TOKEN).await;
    assert!(fetched.result()["scim_config"].get("secret").is_none());
    assert_eq!(
        fetched.result()["scim_config"]["identity_update_behavior"],
        "reauth"
    );

    // Sending the fetched provider back keeps the secret and changes what changed.
    let mut replaced = fetched.result().clone();
    replaced["name"] = json!("Corp SSO v2");
    if let Some(obj) = replaced.as_object_mut() {
        obj.remove("id");
    }
    let updated = server
        .put(&format!("{idps}/{oidc_id}"), ADMIN_TOKEN, replaced)
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.result()["name"], "Corp SSO v2");
    assert!(
        updated.result()["scim_config"].get("secret").is_none(),
        "SCIM stayed on: no new secret"
    );

    for (body, pointer) in [
        (json!({"name": "x", "type": "saml", "config": {}}), "/type"),
        (
            json!({"name": "x", "type": "oidc", "config": {"client_id": "a"}}),
            "/config/client_secret",
        ),
        (
            json!({"name": "x", "type": "oidc", "config": {"client_id": "a", "client_secret": "b", "auth_url": "ftp://x", "token_url": "https://t", "certs_url": "https://c"}}),
            "/config/auth_url",
        ),
        (
            json!({"name": "x", "type": "onetimepin", "config": {"otp_length": 8}}),
            "/config/otp_length",
        ),
        (
            json!({"name": "", "type": "oidc", "config": oidc_config()}),
            "/name",
        ),
        (
            json!({"name": "x", "type": "oidc", "config": oidc_config(), "scim_config": {"seat_deprovision": true}}),
            "/scim_config/seat_deprovision",
        ),
    ] {
        let reply = server.post(&idps, ADMIN_TOKEN, body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            reply.body["errors"][0]["source"]["pointer"], pointer,
            "{body}: {}",
            reply.body
        );
    }
    let retype = server
        .put(
            &format!("{idps}/{pin_id}"),
            ADMIN_TOKEN,
            json!({"name": "x", "type": "oidc", "config": oidc_config()}),
        )
        .await;
    assert_eq!(retype.status, StatusCode::BAD_REQUEST);

    let listed = server.get(&idps, ADMIN_TOKEN).await;
    assert_eq!(listed.body["result_info"]["total_count"], 2);
    assert_eq!(listed.body["result_info"]["per_page"], 200);
    let scim_only = server
        .get(&format!("{idps}?scim_enabled=true"), ADMIN_TOKEN)
        .await;
    assert_eq!(scim_only.result().as_array().map(Vec::len), Some(1));
    assert_eq!(scim_only.result()[0]["id"], oidc_id.as_str());

    let (_, reader) = server.create_token(&account, &[IDPS_READ]).await;
    assert_eq!(server.get(&idps, &reader).await.status, StatusCode::OK);
    let refused = server
        .post(
            &idps,
            &reader,
            json!({"name": "x", "type": "oidc", "config": oidc_config()}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let deleted = server
        .delete(&format!("{idps}/{pin_id}"), ADMIN_TOKEN)
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    assert_eq!(deleted.result(), &json!({"id": pin_id}));
    let gone = server.get(&format!("{idps}/{pin_id}"), ADMIN_TOKEN).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error_code(), 12130);
}
