use reqwest::StatusCode;
use serde_json::json;

use crate::common::{ADMIN_TOKEN, Reply, Server, TestDb};

crate::on_each_backend!(
    credential_failures_answer_like_cloudflare,
    user_token_verify
);

async fn raw(server: &Server, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = server.http.get(server.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Server::reply(request).await
}

async fn credential_failures_answer_like_cloudflare(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let path = format!("/accounts/{account}/tokens");

    let none = raw(&server, &path, &[]).await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        none.body,
        json!({"success": false, "messages": [], "result": null,
               "errors": [{"code": 9106, "message": "Missing X-Auth-Key, X-Auth-Email or Authorization headers"}]})
    );

    for bad in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer hello",
        "Bearer 0123456789abcdef0123456789abcdef01234",
        "token cfat_x",
    ] {
        let reply = raw(&server, &path, &[("authorization", bad)]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            reply.body["errors"],
            json!([{"code": 6003, "message": "Invalid request headers",
                    "error_chain": [{"code": 6111, "message": "Invalid format for Authorization header"}]}]),
            "{bad}"
        );
    }

    let unknown = [
        "cfat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "cfut_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "abcdefghijABCDEFGHIJ0123456789-_abcdefgh",
    ];
    for secret in unknown {
        let reply = raw(
            &server,
            &path,
            &[("authorization", &format!("Bearer {secret}"))],
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{secret}");
        assert_eq!(
            reply.body["errors"],
            json!([{"code": 1000, "message": "Invalid API Token"}])
        );
    }

    let bad_key = raw(
        &server,
        &path,
        &[("x-auth-key", "short"), ("x-auth-email", "ops@example.com")],
    )
    .await;
    assert_eq!(bad_key.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad_key.body["errors"][0]["error_chain"],
        json!([{"code": 6103, "message": "Invalid format for X-Auth-Key header"}])
    );
    let bad_both = raw(
        &server,
        &path,
        &[("x-auth-key", "short"), ("x-auth-email", "nobody")],
    )
    .await;
    assert_eq!(
        bad_both.body["errors"][0]["error_chain"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let global_key = raw(
        &server,
        &path,
        &[
            ("x-auth-key", "0123456789abcdef0123456789abcdef01234"),
            ("x-auth-email", "ops@example.com"),
        ],
    )
    .await;
    assert_eq!(global_key.status, StatusCode::FORBIDDEN);
    assert_eq!(global_key.error_code(), 9103);

    // The TypeScript SDK sends every configured credential; a good Bearer token wins.
    let both = raw(
        &server,
        &path,
        &[
            ("authorization", &format!("Bearer {ADMIN_TOKEN}")),
            ("x-auth-key", "x"),
            ("x-auth-email", "y"),
        ],
    )
    .await;
    assert_eq!(both.status, StatusCode::OK);
}

async fn user_token_verify(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let (_, account_token) = server
        .create_token(&account, &["eb56a6953c034b9d97dd838155666f06"])
        .await;

    let admin = server.get("/user/tokens/verify", ADMIN_TOKEN).await;
    assert_eq!(admin.status, StatusCode::OK);
    assert_eq!(admin.result()["status"], "active");
    assert_eq!(
        admin.body["messages"][0]["message"],
        "This API Token is valid and active"
    );

    let refused = server.get("/user/tokens/verify", &account_token).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.error_code(), 1000);
}
