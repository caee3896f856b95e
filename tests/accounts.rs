use reqwest::StatusCode;
use serde_json::json;

use crate::common::{ADMIN_TOKEN, Server, TestDb};

crate::on_each_backend!(
    account_lifecycle,
    accounts_page_by_page,
    only_the_admin_manages_accounts,
    empty_lists_say_alike_that_there_is_no_page,
);

async fn account_lifecycle(db: TestDb) {
    let server = Server::start(&db).await;
    let created = server
        .post(
            "/accounts",
            ADMIN_TOKEN,
            json!({"name": "Demo", "type": "enterprise"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK);
    let account = created.result().clone();
    let id = account["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(id.len(), 32);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(account["name"], "Demo");
    assert_eq!(account["type"], "enterprise");
    assert_eq!(account["settings"], json!({"enforce_twofactor": false}));
    assert_eq!(account["managed_by"], json!({}));
    assert!(
        account["created_on"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );

    let fetched = server.get(&format!("/accounts/{id}"), ADMIN_TOKEN).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.result(), &account);

    let update = json!({"id": id, "name": "Renamed", "type": "standard",
                        "settings": {"enforce_twofactor": true, "abuse_contact_email": "abuse@example.com"},
                        "managed_by": {}});
    let updated = server
        .put(&format!("/accounts/{id}"), ADMIN_TOKEN, update)
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.result()["name"], "Renamed");
    assert_eq!(updated.result()["type"], "standard");
    assert_eq!(updated.result()["settings"]["enforce_twofactor"], true);
    assert_eq!(updated.result()["created_on"], account["created_on"]);

    let other = server.create_account("Other").await;
    let mismatch = server
        .put(
            &format!("/accounts/{id}"),
            ADMIN_TOKEN,
            json!({"id": other, "name": "X", "type": "standard"}),
        )
        .await;
    assert_eq!(mismatch.status, StatusCode::BAD_REQUEST);
    assert_eq!(mismatch.error_code(), 1004);
    assert_eq!(mismatch.body["errors"][0]["source"]["pointer"], "/id");

    let deleted = server.delete(&format!("/accounts/{id}"), ADMIN_TOKEN).await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.result(), &json!({"id": id}));
    let gone = server.get(&format!("/accounts/{id}"), ADMIN_TOKEN).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error_code(), 1003);
    let again = server.delete(&format!("/accounts/{id}"), ADMIN_TOKEN).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

async fn accounts_page_by_page(db: TestDb) {
    let server = Server::start(&db).await;
    for i in 0..7 {
        server.create_account(&format!("Team {i}")).await;
    }
    server.create_account("Unrelated").await;

    let first = server
        .get("/accounts?name=team&per_page=5", ADMIN_TOKEN)
        .await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        first.body["result_info"],
        json!({"page": 1, "per_page": 5, "count": 5, "total_count": 7, "total_pages": 2})
    );
    let second = server
        .get("/accounts?name=TEAM&per_page=5&page=2", ADMIN_TOKEN)
        .await;
    assert_eq!(second.body["result_info"]["count"], 2);
    let mut names: Vec<String> = first
        .result()
        .as_array()
        .into_iter()
        .flatten()
        .chain(second.result().as_array().into_iter().flatten())
        .filter_map(|a| a["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        names,
        (0..7).map(|i| format!("Team {i}")).collect::<Vec<_>>()
    );

    let past_end = server
        .get("/accounts?name=team&per_page=5&page=3", ADMIN_TOKEN)
        .await;
    assert_eq!(past_end.status, StatusCode::OK);
    assert_eq!(past_end.result(), &json!([]));

    let desc = server
        .get("/accounts?name=team+6&direction=desc", ADMIN_TOKEN)
        .await;
    assert_eq!(desc.result().as_array().map(Vec::len), Some(1));
    let all_desc = server
        .get("/accounts?direction=desc&per_page=50", ADMIN_TOKEN)
        .await;
    names = all_desc
        .result()
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(names.first().map(String::as_str), Some("Unrelated"));
}

async fn only_the_admin_manages_accounts(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Demo").await;
    let (_, settings_reader) = server
        .create_token(&account, &["c1fde68c7bcc44588cbb6ddbc16d6480"])
        .await;

    let read = server
        .get(&format!("/accounts/{account}"), &settings_reader)
        .await;
    assert_eq!(read.status, StatusCode::OK);
    let write = server
        .put(
            &format!("/accounts/{account}"),
            &settings_reader,
            json!({"id": account, "name": "Mine", "type": "standard"}),
        )
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    assert_eq!(write.error_code(), 10000);

    let create = server
        .post("/accounts", &settings_reader, json!({"name": "Sneaky"}))
        .await;
    assert_eq!(create.status, StatusCode::FORBIDDEN);
    assert_eq!(create.error_code(), 10000);
    let delete = server
        .delete(&format!("/accounts/{account}"), &settings_reader)
        .await;
    assert_eq!(delete.status, StatusCode::FORBIDDEN);

    let list = server.get("/accounts", &settings_reader).await;
    assert_eq!(list.status, StatusCode::BAD_REQUEST);
    assert_eq!(list.error_code(), 1001);
    assert_eq!(
        list.body["errors"][0]["message"],
        "List accounts endpoint does not support account owned tokens."
    );
}

/// An empty collection has no page, whether it is paginated (users) or
/// returned whole (a user's active sessions).
async fn empty_lists_say_alike_that_there_is_no_page(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Empty").await;
    let users = format!("/accounts/{account}/access/users");
    let none = server.get(&users, ADMIN_TOKEN).await;
    assert_eq!(
        none.body["result_info"]["total_pages"],
        json!(0),
        "{}",
        none.body
    );
    let user = server
        .post(&users, ADMIN_TOKEN, json!({"email": "alone@example.com"}))
        .await;
    let id = user.result()["id"].as_str().unwrap_or_default().to_string();
    let sessions = server
        .get(&format!("{users}/{id}/active_sessions"), ADMIN_TOKEN)
        .await;
    assert_eq!(sessions.status, StatusCode::OK, "{}", sessions.body);
    for field in ["count", "total_count", "total_pages"] {
        assert_eq!(
            sessions.body["result_info"][field],
            json!(0),
            "{}",
            sessions.body
        );
    }
}
