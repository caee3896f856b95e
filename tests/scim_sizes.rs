//! What a provider may store is bounded (string attributes, multi-valued
//! attributes, a resource as a whole, a group's members), so listing and
//! filtering everything it stored stays cheap; and costly listings run off
//! the async workers, so other requests are answered meanwhile.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{ADMIN_TOKEN, Reply, TestDb};
use crate::scim::{provider, scim_error};

crate::on_each_backend!(
    attribute_sizes_are_capped,
    group_members_are_capped,
    undeclared_and_empty_values_are_dropped_in_patch_and_lists,
    costly_searches_leave_the_server_answering,
);

/// The limits the errors, README and docs/security.md state.
const MAX_STRING_CHARS: usize = 1024;
const MAX_VALUES: usize = 100;
const MAX_RESOURCE_BYTES: usize = 16 * 1024;
const MAX_MEMBERS: usize = 10_000;

fn user(name: &str, extra: Value) -> Value {
    let mut body = json!({"userName": format!("{name}@example.com")});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

fn id_of(reply: &Reply) -> String {
    assert!(reply.status.is_success(), "{}", reply.body);
    reply.body["id"].as_str().unwrap_or_default().to_string()
}

fn refused_naming(reply: &Reply, limit: &str) {
    scim_error(reply, 400, Some("invalidValue"));
    let detail = reply.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(limit), "{detail}");
}

fn emails(count: usize) -> Value {
    (0..count)
        .map(|i| json!({"value": format!("e{i}@example.com")}))
        .collect()
}

async fn attribute_sizes_are_capped(db: TestDb) {
    let server = crate::common::Server::start(&db).await;
    let (_, scim) = provider(&server).await;
    let limit = MAX_STRING_CHARS.to_string();

    // A string attribute, a sub-attribute, characters not bytes: at the limit
    // accepted, one past refused naming the limit.
    let at_limit = "é".repeat(MAX_STRING_CHARS);
    let past = "é".repeat(MAX_STRING_CHARS + 1);
    let created = scim
        .call(
            "POST",
            "/Users",
            Some(user("ann", json!({"title": at_limit}))),
        )
        .await;
    let ann = id_of(&created);
    assert_eq!(created.body["title"], at_limit.as_str());
    for sent in [
        json!({"title": past}),
        json!({"name": {"givenName": past}}),
        json!({"emails": [{"value": "b@example.com", "display": past}]}),
    ] {
        let reply = scim.call("POST", "/Users", Some(user("bob", sent))).await;
        refused_naming(&reply, &limit);
    }
    let replaced = scim
        .call(
            "PUT",
            &format!("/Users/{ann}"),
            Some(user("ann", json!({"title": past}))),
        )
        .await;
    refused_naming(&replaced, &limit);
    let patched = scim
        .call(
            "PATCH",
            &format!("/Users/{ann}"),
            Some(json!({"Operations": [{"op": "replace", "path": "title", "value": past}]})),
        )
        .await;
    refused_naming(&patched, &limit);

    // Multi-valued attributes: at most 100 values, also after a PATCH adds more.
    let many = scim
        .call(
            "POST",
            "/Users",
            Some(user("cat", json!({"emails": emails(MAX_VALUES)}))),
        )
        .await;
    let cat = id_of(&many);
    assert_eq!(
        many.body["emails"].as_array().map(Vec::len),
        Some(MAX_VALUES)
    );
    let too_many = scim
        .call(
            "POST",
            "/Users",
            Some(user("dan", json!({"emails": emails(MAX_VALUES + 1)}))),
        )
        .await;
    refused_naming(&too_many, &MAX_VALUES.to_string());
    let one_more = scim
        .call(
            "PATCH",
            &format!("/Users/{cat}"),
            Some(json!({"Operations": [{"op": "add", "path": "emails",
                "value": [{"value": "extra@example.com"}]}]})),
        )
        .await;
    refused_naming(&one_more, &MAX_VALUES.to_string());

    // A User as a whole, each attribute within its limit: at most 16 KiB.
    let phones = |count: usize| -> Value {
        (0..count)
            .map(|i| json!({"value": format!("{i:0>1000}")}))
            .collect()
    };
    let big = scim
        .call(
            "POST",
            "/Users",
            Some(user("eve", json!({"phoneNumbers": phones(10)}))),
        )
        .await;
    id_of(&big);
    let too_big = scim
        .call(
            "POST",
            "/Users",
            Some(user("fay", json!({"phoneNumbers": phones(20)}))),
        )
        .await;
    refused_naming(&too_big, &MAX_RESOURCE_BYTES.to_string());

    // Nothing refused was stored.
    let unchanged = scim.call("GET", &format!("/Users/{ann}"), None).await;
    assert_eq!(unchanged.body["title"], at_limit.as_str());
    let listed = scim.call("GET", "/Users", None).await;
    assert_eq!(listed.body["totalResults"], 3, "{}", listed.body);
}

async fn group_members_are_capped(db: TestDb) {
    let server = crate::common::Server::start(&db).await;
    let (_, scim) = provider(&server).await;
    let ann = id_of(
        &scim
            .call("POST", "/Users", Some(user("ann", json!({}))))
            .await,
    );
    // Members must be users of the provider; the count is checked first, so
    // a list one past the limit is refused for its length.
    let members = |count: usize| -> Value {
        (0..count)
            .map(|i| json!({"value": if i == 0 { ann.clone() } else { format!("member-{i}") }}))
            .collect()
    };
    let limit = MAX_MEMBERS.to_string();
    let created = scim
        .call(
            "POST",
            "/Groups",
            Some(json!({"displayName": "G", "members": members(1)})),
        )
        .await;
    let group = id_of(&created);
    let over = scim
        .call(
            "POST",
            "/Groups",
            Some(json!({"displayName": "Over", "members": members(MAX_MEMBERS + 1)})),
        )
        .await;
    refused_naming(&over, &limit);
    let replaced = scim
        .call(
            "PUT",
            &format!("/Groups/{group}"),
            Some(json!({"displayName": "G", "members": members(MAX_MEMBERS + 1)})),
        )
        .await;
    refused_naming(&replaced, &limit);
    let added = scim
        .call(
            "PATCH",
            &format!("/Groups/{group}"),
            Some(json!({"Operations": [{"op": "add", "path": "members",
                "value": members(MAX_MEMBERS + 1)}]})),
        )
        .await;
    refused_naming(&added, &limit);
    let long_id = scim
        .call(
            "POST",
            "/Groups",
            Some(json!({"displayName": "Long",
                        "members": [{"value": "x".repeat(MAX_STRING_CHARS + 1)}]})),
        )
        .await;
    refused_naming(&long_id, &MAX_STRING_CHARS.to_string());
    let kept = scim.call("GET", &format!("/Groups/{group}"), None).await;
    assert_eq!(kept.body["members"][0]["value"], ann.as_str());
    assert_eq!(kept.body["members"].as_array().map(Vec::len), Some(1));
}

async fn undeclared_and_empty_values_are_dropped_in_patch_and_lists(db: TestDb) {
    let server = crate::common::Server::start(&db).await;
    let (_, scim) = provider(&server).await;
    let created = scim
        .call(
            "POST",
            "/Users",
            Some(user(
                "ann",
                json!({"addresses": [{"weird": 1}, {"locality": "Paris"}], "name": {"weird": 1}}),
            )),
        )
        .await;
    let ann = id_of(&created);
    assert_eq!(created.body["addresses"], json!([{"locality": "Paris"}]));
    assert!(created.body.get("name").is_none(), "{}", created.body);
    let patched = scim
        .call(
            "PATCH",
            &format!("/Users/{ann}"),
            Some(json!({"Operations": [{"op": "add", "value": {"foo": 1, "title": "Boss"}}]})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["title"], "Boss");
    assert!(patched.body.get("foo").is_none(), "{}", patched.body);
    let stored = scim.call("GET", &format!("/Users/{ann}"), None).await;
    assert!(stored.body.get("foo").is_none(), "{}", stored.body);
    assert_eq!(stored.body["addresses"], json!([{"locality": "Paris"}]));
}

/// Allowed, and as costly as allowed: 200 `co` terms over the longest titles.
fn costly_filter() -> String {
    (0..200)
        // Three digits never occur in the titles below, so nothing matches.
        .map(|i| format!("title co \"{i:0>3}\""))
        .collect::<Vec<_>>()
        .join(" or ")
}

async fn costly_searches_leave_the_server_answering(db: TestDb) {
    let server = crate::common::Server::start(&db).await;
    let (_, scim) = provider(&server).await;
    // The attack as it was found, users with titles of half a megabyte, cannot
    // be set up any more.
    let huge = scim
        .call(
            "POST",
            "/Users",
            Some(user("huge", json!({"title": "z".repeat(512 * 1024)}))),
        )
        .await;
    refused_naming(&huge, &MAX_STRING_CHARS.to_string());
    // The costliest it can be now: the longest titles, the widest filter.
    for i in 0..100 {
        let title = format!("{i}-").repeat(MAX_STRING_CHARS)[..MAX_STRING_CHARS].to_string();
        let reply = scim
            .call(
                "POST",
                "/Users",
                Some(user(&format!("u{i}"), json!({"title": title}))),
            )
            .await;
        id_of(&reply);
    }
    let filter = costly_filter();
    assert!(filter.len() <= 4096);
    let body = json!({"filter": filter});
    let search = || scim.call("POST", "/Users/.search", Some(body.clone()));
    let started = std::time::Instant::now();
    let (a, b, c, d, unrelated) = tokio::join!(search(), search(), search(), search(), async {
        // Sent while the searches run.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let reply = server.get("/accounts", ADMIN_TOKEN).await;
        (reply, started.elapsed())
    },);
    for reply in [a, b, c, d] {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.body["totalResults"], 0, "{}", reply.body);
    }
    let (reply, answered_after) = unrelated;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        answered_after < std::time::Duration::from_secs(10),
        "an unrelated request waited {answered_after:?} behind SCIM searches"
    );
}
