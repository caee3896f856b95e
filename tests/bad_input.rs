//! Bad input as a newcomer would send it: every answer is a clear v4 error
//! and nothing is lost or half-written.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{ADMIN_TOKEN, Reply, Server, TestDb};

crate::on_each_backend!(bad_input_gets_clear_errors);

async fn send(server: &Server, method: &str, path: &str, body: Option<&str>) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut request = server
        .http
        .request(method, server.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json");
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    Server::reply(request).await
}

async fn bad_input_gets_clear_errors(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;

    let non_hex = send(&server, "GET", "/accounts/not-an-account/tokens", None).await;
    assert_eq!(non_hex.status, StatusCode::BAD_REQUEST);
    assert_eq!(non_hex.error_code(), 7003);
    assert_eq!(
        non_hex.body["errors"][0]["message"],
        "Could not route to /client/v4/accounts/not-an-account/tokens, perhaps your object identifier is invalid?"
    );
    let email_as_id = send(&server, "GET", "/accounts/jdoe%40example.com", None).await;
    assert_eq!(email_as_id.error_code(), 7003);

    let unknown_route = send(&server, "GET", "/zones/abc/dns_records", None).await;
    assert_eq!(unknown_route.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown_route.error_code(), 7003);
    let outside_api = Server::reply(server.http.get(format!("{}/favicon.ico", server.base))).await;
    assert_eq!(outside_api.status, StatusCode::NOT_FOUND);

    let wrong_method = send(
        &server,
        "PATCH",
        &format!("/accounts/{account}"),
        Some("{}"),
    )
    .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.error_code(), 7001);

    let tokens = format!("/accounts/{account}/tokens");
    let invalid_json = send(&server, "POST", &tokens, Some("{\"name\": ")).await;
    assert_eq!(invalid_json.status, StatusCode::BAD_REQUEST);
    assert_eq!(invalid_json.error_code(), 6007);
    let not_an_object = send(&server, "POST", &tokens, Some("[1,2]")).await;
    assert_eq!(not_an_object.status, StatusCode::BAD_REQUEST);
    let trailing = send(&server, "POST", "/accounts", Some("{\"name\":\"a\"} {}")).await;
    assert_eq!(trailing.error_code(), 6007);
    let empty = send(&server, "POST", "/accounts", Some("")).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(
        empty.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("empty"))
    );

    let wrong_type = send(
        &server,
        "POST",
        &tokens,
        Some(r#"{"name": ["x"], "policies": []}"#),
    )
    .await;
    assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong_type.error_code(), 1004);
    assert_eq!(wrong_type.body["errors"][0]["source"]["pointer"], "/name");
    let missing = send(&server, "POST", &tokens, Some(r#"{"name": "x"}"#)).await;
    assert!(
        missing.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("policies"))
    );
    let unknown_field = send(
        &server,
        "POST",
        "/accounts",
        Some(r#"{"name": "x", "plan": "pro"}"#),
    )
    .await;
    assert!(
        unknown_field.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("unknown field `plan`"))
    );
    let bad_type = send(
        &server,
        "POST",
        "/accounts",
        Some(r#"{"name": "x", "type": "premium"}"#),
    )
    .await;
    assert_eq!(bad_type.body["errors"][0]["source"]["pointer"], "/type");
    let long_name = send(
        &server,
        "POST",
        "/accounts",
        Some(&json!({"name": "n".repeat(101)}).to_string()),
    )
    .await;
    assert_eq!(long_name.status, StatusCode::BAD_REQUEST);

    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let too_large = send(&server, "POST", "/accounts", Some(&huge)).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.error_code(), 1008);

    for query in [
        "page=abc",
        "page=0",
        "per_page=1000",
        "direction=sideways",
        "include_expired=maybe",
    ] {
        let reply = send(&server, "GET", &format!("{tokens}?{query}"), None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        let name = query.split('=').next().unwrap_or_default();
        assert!(
            reply.body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains(name)),
            "{query}: {}",
            reply.body
        );
    }

    let bad_token_id = send(&server, "GET", &format!("{tokens}/nope"), None).await;
    assert_eq!(bad_token_id.status, StatusCode::NOT_FOUND);

    // Nothing above created anything.
    let accounts = send(&server, "GET", "/accounts", None).await;
    assert_eq!(accounts.body["result_info"]["total_count"], 1);
    let listed = send(
        &server,
        "GET",
        &format!("{tokens}?include_expired=true"),
        None,
    )
    .await;
    assert_eq!(listed.result(), &json!([]));
}
