//! Filters and PATCH paths at and past their limits: the deepest and
//! longest allowed work, anything beyond is a clean 400, and inputs built to
//! exhaust the stack leave the server answering.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Server, TestDb};
use crate::scim::{Scim, provider, scim_error};

crate::on_each_backend!(filters_and_paths_past_their_limits_are_refused_and_the_server_lives);

/// The limits `/ServiceProviderConfig` and the errors state.
const MAX_DEPTH: usize = 32;
const MAX_TERMS: usize = 200;
const MAX_LENGTH: usize = 4096;

fn nested(open: &str, close: &str, depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

fn chain(terms: usize) -> String {
    vec!["userName pr"; terms].join(" and ")
}

fn query(filter: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("filter", filter)
        .finish()
}

/// The most a `GET` URL may carry here: the HTTP client refuses longer ones.
const MAX_URL_FILTER: usize = 60_000;

/// The filter through every listing: `GET` (when a URL can carry it) and
/// `.search`, users and groups.
async fn every_listing(scim: &Scim<'_>, filter: &str) -> Vec<(String, crate::common::Reply)> {
    let mut replies = Vec::new();
    for listing in ["/Users", "/Groups"] {
        if filter.len() <= MAX_URL_FILTER {
            replies.push((
                format!("GET {listing}"),
                scim.call("GET", &format!("{listing}?{}", query(filter)), None)
                    .await,
            ));
        }
        replies.push((
            format!("POST {listing}/.search"),
            scim.call(
                "POST",
                &format!("{listing}/.search"),
                Some(json!({"filter": filter})),
            )
            .await,
        ));
    }
    replies.push((
        "POST /.search".into(),
        scim.call("POST", "/.search", Some(json!({"filter": filter})))
            .await,
    ));
    replies
}

async fn accepted_everywhere(scim: &Scim<'_>, filter: &str, expected_users: u64) {
    for (route, reply) in every_listing(scim, filter).await {
        assert_eq!(reply.status, StatusCode::OK, "{route}: {}", reply.body);
        if route.contains("Users") {
            assert_eq!(reply.body["totalResults"], expected_users, "{route}");
        }
    }
}

async fn refused_everywhere(scim: &Scim<'_>, filter: &str, limit: &str) {
    for (route, reply) in every_listing(scim, filter).await {
        scim_error(&reply, 400, Some("invalidFilter"));
        let detail = reply.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(limit), "{route}: {detail}");
    }
}

async fn patch_path(scim: &Scim<'_>, user: &str, path: &str) -> crate::common::Reply {
    scim.call(
        "PATCH",
        &format!("/Users/{user}"),
        Some(json!({"Operations": [{"op": "replace", "path": path, "value": "x@example.com"}]})),
    )
    .await
}

async fn answers(server: &Server, scim: &Scim<'_>) {
    let users = scim.call("GET", "/Users?count=1", None).await;
    assert_eq!(users.status, StatusCode::OK, "{}", users.body);
    let accounts = server.get("/accounts", crate::common::ADMIN_TOKEN).await;
    assert_eq!(accounts.status, StatusCode::OK);
}

async fn filters_and_paths_past_their_limits_are_refused_and_the_server_lives(db: TestDb) {
    let server = Server::start(&db).await;
    let (_, scim) = provider(&server).await;
    let created = scim
        .call(
            "POST",
            "/Users",
            Some(json!({"userName": "ann@example.com",
                        "emails": [{"value": "ann@example.com", "type": "work"}]})),
        )
        .await;
    let user = created.body["id"].as_str().unwrap_or_default().to_string();

    // The discovery document states the limits the server enforces.
    let config = scim.call("GET", "/ServiceProviderConfig", None).await;
    assert_eq!(config.body["filter"]["maxResults"], 1000);

    // At the limits: accepted.
    accepted_everywhere(&scim, &nested("(", ")", MAX_DEPTH, "userName pr"), 1).await;
    accepted_everywhere(&scim, &nested("not (", ")", MAX_DEPTH, "userName pr"), 1).await;
    accepted_everywhere(&scim, &chain(MAX_TERMS), 1).await;
    let padded = |length: usize| {
        format!(
            "userName ne \"{}\"",
            "a".repeat(length - "userName ne \"\"".len())
        )
    };
    accepted_everywhere(&scim, &padded(MAX_LENGTH), 1).await;

    // One past: refused, naming the limit.
    refused_everywhere(
        &scim,
        &nested("(", ")", MAX_DEPTH + 1, "userName pr"),
        "deeper than 32",
    )
    .await;
    refused_everywhere(&scim, &chain(MAX_TERMS + 1), "more than 200").await;
    refused_everywhere(&scim, &padded(MAX_LENGTH + 1), "longer than 4096").await;

    // Built to overflow a stack: refused, the server keeps answering.
    refused_everywhere(
        &scim,
        &nested("(", ")", 1500, "userName pr"),
        "deeper than 32",
    )
    .await;
    let deep_small = nested("(", ")", 5000, "a pr");
    for (route, reply) in every_listing(&scim, &deep_small).await {
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{route}");
    }
    refused_everywhere(&scim, &"(".repeat(MAX_LENGTH), "deeper than 32").await;
    refused_everywhere(&scim, &nested("emails[", "]", 2000, "a pr"), "longer than").await;
    refused_everywhere(&scim, &nested("e[", "]", 1300, "a pr"), "deeper than 32").await;
    for terms in [3_000, 20_000] {
        let replies = every_listing(&scim, &chain(terms)).await;
        assert_eq!(replies.len(), if terms == 3_000 { 5 } else { 3 });
        for (route, reply) in replies {
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{route}");
        }
    }
    answers(&server, &scim).await;

    // PATCH paths: a value filter at the depth limit works, one past is invalidPath.
    let deepest = format!(
        "emails[{}].value",
        nested("(", ")", MAX_DEPTH - 1, "type eq \"work\"")
    );
    let patched = patch_path(&scim, &user, &deepest).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["emails"][0]["value"], "x@example.com");
    let too_deep = format!(
        "emails[{}].value",
        nested("(", ")", MAX_DEPTH, "type eq \"work\"")
    );
    scim_error(
        &patch_path(&scim, &user, &too_deep).await,
        400,
        Some("invalidPath"),
    );
    let widest = format!("emails[{}].value", vec!["type pr"; MAX_TERMS].join(" or "));
    assert_eq!(
        patch_path(&scim, &user, &widest).await.status,
        StatusCode::OK
    );
    let too_wide = format!(
        "emails[{}].value",
        vec!["type pr"; MAX_TERMS + 1].join(" or ")
    );
    scim_error(
        &patch_path(&scim, &user, &too_wide).await,
        400,
        Some("invalidPath"),
    );
    for attack in [
        format!("emails[{}].value", nested("(", ")", 5000, "type pr")),
        nested("emails[", "]", 2000, "type pr"),
        format!("emails[{}].value", chain(20_000)),
    ] {
        let reply = patch_path(&scim, &user, &attack).await;
        scim_error(&reply, 400, Some("invalidPath"));
    }
    let group = scim
        .call("POST", "/Groups", Some(json!({"displayName": "G"})))
        .await;
    let group_patch = scim
        .call(
            "PATCH",
            &format!("/Groups/{}", group.body["id"].as_str().unwrap_or_default()),
            Some(json!({"Operations": [{"op": "remove",
                "path": format!("members[{}]", nested("(", ")", 5000, "value pr"))}]})),
        )
        .await;
    scim_error(&group_patch, 400, Some("invalidPath"));

    answers(&server, &scim).await;
    let unchanged: Value = scim.call("GET", &format!("/Users/{user}"), None).await.body;
    assert_eq!(unchanged["emails"][0]["value"], "x@example.com");
}
