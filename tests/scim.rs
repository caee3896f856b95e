//! The SCIM service as identity providers use it.

use accessd::domain::activity::{Identity, Session, SessionNonce};
use accessd::domain::{AccountId, Timestamp, UserId};
use accessd::store::Store;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{ADMIN_TOKEN, Reply, Server, TestDb};

crate::on_each_backend!(
    scim_users_as_okta_and_entra_send_them,
    scim_groups_and_their_members,
    paging_five_thousand_users_while_others_come_and_go,
    identity_update_behavior_decides_what_a_rename_does,
    deleted_scim_users_are_purged_with_other_tombstones,
);

pub struct Scim<'a> {
    pub server: &'a Server,
    pub base: String,
    pub secret: String,
}

impl Scim<'_> {
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.call_as(&self.secret, method, path, body).await
    }

    pub async fn call_as(
        &self,
        secret: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut request = self
            .server
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(secret);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
        };
        Reply {
            status,
            headers,
            body,
        }
    }
}

/// An account with one SCIM-enabled provider; returns the SCIM client.
pub async fn provider(server: &Server) -> (String, Scim<'_>) {
    let account = server.create_account("Home").await;
    let scim = scim_provider(server, &account, "Entra", json!({"enabled": true})).await;
    (account, scim)
}

/// A provider of `account` with `scim_config`; returns its SCIM client.
pub async fn scim_provider<'a>(
    server: &'a Server,
    account: &str,
    name: &str,
    scim_config: Value,
) -> Scim<'a> {
    let idp = server
        .post(
            &format!("/accounts/{account}/access/identity_providers"),
            ADMIN_TOKEN,
            json!({"name": name, "type": "oidc", "config": {
            "client_id": "c", "client_secret": "s", "auth_url": "https://login.example.com/a",
            "token_url": "https://login.example.com/t", "certs_url": "https://login.example.com/k"},
            "scim_config": scim_config}),
        )
        .await;
    let base = format!(
        "{}/scim/v2/{}",
        server.base,
        idp.result()["id"].as_str().unwrap_or_default()
    );
    let secret = idp.result()["scim_config"]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Scim {
        server,
        base,
        secret,
    }
}

async fn scim_groups_and_their_members(db: TestDb) {
    let server = Server::start(&db).await;
    let (_, scim) = provider(&server).await;
    let mut ids = Vec::new();
    for name in ["ann", "bob", "cat"] {
        let made = scim
            .call(
                "POST",
                "/Users",
                Some(json!({"userName": format!("{name}@example.com")})),
            )
            .await;
        ids.push(made.body["id"].as_str().unwrap_or_default().to_string());
    }
    let created = scim
        .call("POST", "/Groups", Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Engineering", "externalId": "eng-1", "members": [{"value": ids[0]}, {"value": ids[1]}]})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let group = created.body["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(created.body["members"][0]["type"], "User");
    assert_eq!(created.body["members"].as_array().map(Vec::len), Some(2));
    scim_error(
        &scim
            .call(
                "POST",
                "/Groups",
                Some(json!({"displayName": "engineering"})),
            )
            .await,
        409,
        Some("uniqueness"),
    );
    scim_error(
        &scim
            .call(
                "POST",
                "/Groups",
                Some(json!({"displayName": "Ghosts", "members": [{"value": "nobody"}]})),
            )
            .await,
        400,
        Some("invalidValue"),
    );
    assert_eq!(
        scim.call(
            "GET",
            "/Groups?filter=displayName%20eq%20%22Ghosts%22",
            None
        )
        .await
        .body["totalResults"],
        0,
        "nothing half-made"
    );

    let ann = scim.call("GET", &format!("/Users/{}", ids[0]), None).await;
    assert_eq!(ann.body["groups"][0]["value"], group.as_str());
    let with_bob = scim
        .call(
            "GET",
            &format!("/Groups?filter=members%5Bvalue%20eq%20%22{}%22%5D", ids[1]),
            None,
        )
        .await;
    assert_eq!(with_bob.body["totalResults"], 1);

    // Okta adds a member; Entra removes one by value; a filtered remove takes another.
    let patch = |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
    let added = scim
        .call(
            "PATCH",
            &format!("/Groups/{group}"),
            Some(patch(
                json!([{"op": "add", "path": "members", "value": [{"value": ids[2]}]}]),
            )),
        )
        .await;
    assert_eq!(
        added.body["members"].as_array().map(Vec::len),
        Some(3),
        "{}",
        added.body
    );
    let removed = scim
        .call(
            "PATCH",
            &format!("/Groups/{group}"),
            Some(patch(
                json!([{"op": "Remove", "path": "members", "value": [{"value": ids[0]}]}]),
            )),
        )
        .await;
    assert_eq!(removed.body["members"].as_array().map(Vec::len), Some(2));
    let filtered = scim
        .call(
            "PATCH",
            &format!("/Groups/{group}"),
            Some(patch(json!([
        {"op": "remove", "path": format!("members[value eq \"{}\"]", ids[1])},
        {"op": "replace", "value": {"displayName": "Platform"}}]))),
        )
        .await;
    assert_eq!(filtered.body["displayName"], "Platform");
    assert_eq!(
        filtered.body["members"],
        json!([{"value": ids[2], "type": "User",
        "$ref": format!("{}/Users/{}", scim.base, ids[2])}])
    );

    // Deleting a user drops the membership; deleting the group leaves the users.
    assert_eq!(
        scim.call("DELETE", &format!("/Users/{}", ids[2]), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        scim.call("GET", &format!("/Groups/{group}"), None)
            .await
            .body["members"],
        json!([])
    );
    assert_eq!(
        scim.call("DELETE", &format!("/Groups/{group}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    scim_error(
        &scim.call("GET", &format!("/Groups/{group}"), None).await,
        404,
        None,
    );
    assert_eq!(
        scim.call("GET", "/Users", None).await.body["totalResults"],
        2
    );
    let types = scim.call("GET", "/ResourceTypes", None).await;
    assert_eq!(types.body["totalResults"], 2);
}

pub fn scim_error(reply: &Reply, status: u16, scim_type: Option<&str>) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.body);
    assert_eq!(
        reply.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    assert_eq!(reply.body["status"], status.to_string());
    assert_eq!(
        reply.body.get("scimType").and_then(Value::as_str),
        scim_type,
        "{}",
        reply.body
    );
}

async fn scim_users_as_okta_and_entra_send_them(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let idps = format!("/accounts/{account}/access/identity_providers");
    let idp = server
        .post(
            &idps,
            ADMIN_TOKEN,
            json!({"name": "Okta", "type": "oidc", "config": {
            "client_id": "c", "client_secret": "s", "auth_url": "https://okta.example.com/a",
            "token_url": "https://okta.example.com/t", "certs_url": "https://okta.example.com/k"},
            "scim_config": {"enabled": true, "user_deprovision": true, "seat_deprovision": true}}),
        )
        .await;
    let idp_id = idp.result()["id"].as_str().unwrap_or_default().to_string();
    let secret = idp.result()["scim_config"]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let other = server
        .post(
            &idps,
            ADMIN_TOKEN,
            json!({"name": "Other", "type": "oidc", "config": {
            "client_id": "c", "client_secret": "s", "auth_url": "https://o.example.com/a",
            "token_url": "https://o.example.com/t", "certs_url": "https://o.example.com/k"},
            "scim_config": {"enabled": true}}),
        )
        .await;
    let other_secret = other.result()["scim_config"]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let scim = Scim {
        server: &server,
        base: format!("{}/scim/v2/{idp_id}", server.base),
        secret,
    };

    scim_error(
        &scim.call_as("wrong", "GET", "/Users", None).await,
        401,
        None,
    );
    scim_error(
        &scim.call_as(&other_secret, "GET", "/Users", None).await,
        401,
        None,
    );
    let config = scim.call("GET", "/ServiceProviderConfig", None).await;
    assert_eq!(config.body["patch"]["supported"], true);
    assert_eq!(config.body["bulk"]["supported"], false);
    assert_eq!(
        scim.call(
            "GET",
            "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        scim.call("GET", "/ResourceTypes/User", None).await.body["endpoint"],
        "/Users"
    );

    // Okta creates a user.
    let okta_user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "Jane.Doe@example.com", "externalId": "00u1okta",
        "name": {"givenName": "Jane", "familyName": "Doe"},
        "emails": [{"primary": true, "value": "jane.doe@example.com", "type": "work"}],
        "displayName": "Jane Doe", "active": true, "groups": [], "password": "ignored-by-design"
    });
    let created = scim.call("POST", "/Users", Some(okta_user.clone())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(
        created
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/scim+json")
    );
    let id = created.body["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(created.body["meta"]["resourceType"], "User");
    assert_eq!(
        created.body["groups"],
        json!([]),
        "read-only attributes are the service's"
    );
    let mut duplicate = okta_user.clone();
    duplicate["userName"] = json!("jane.doe@EXAMPLE.com");
    scim_error(
        &scim.call("POST", "/Users", Some(duplicate)).await,
        409,
        Some("uniqueness"),
    );
    scim_error(
        &scim
            .call(
                "POST",
                "/Users",
                Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]})),
            )
            .await,
        400,
        Some("invalidValue"),
    );
    scim_error(
        &scim.call("POST", "/Users", Some(json!("nope"))).await,
        400,
        Some("invalidSyntax"),
    );

    for i in 0..4 {
        let body = json!({"userName": format!("user{i}@example.com"), "externalId": format!("ext{i}"),
                          "emails": [{"value": format!("user{i}@example.com"), "type": if i % 2 == 0 { "work" } else { "home" }}]});
        assert_eq!(
            scim.call("POST", "/Users", Some(body)).await.status,
            StatusCode::CREATED
        );
    }
    let by_name = scim
        .call(
            "GET",
            "/Users?filter=userName%20eq%20%22jane.doe%40example.com%22",
            None,
        )
        .await;
    assert_eq!(by_name.body["totalResults"], 1);
    assert_eq!(by_name.body["Resources"][0]["id"], id.as_str());
    let by_external = scim
        .call(
            "GET",
            "/Users?filter=externalId%20eq%20%2200u1okta%22",
            None,
        )
        .await;
    assert_eq!(by_external.body["totalResults"], 1);
    let complex = scim.call("GET", "/Users?filter=emails%5Btype%20eq%20%22work%22%5D%20and%20not%20(userName%20sw%20%22jane%22)", None).await;
    assert_eq!(complex.body["totalResults"], 2);
    scim_error(
        &scim.call("GET", "/Users?filter=userName%20eq", None).await,
        400,
        Some("invalidFilter"),
    );
    let page = scim
        .call(
            "GET",
            "/Users?startIndex=2&count=2&sortBy=userName&sortOrder=descending&attributes=userName",
            None,
        )
        .await;
    assert_eq!(
        (
            page.body["totalResults"].clone(),
            page.body["startIndex"].clone(),
            page.body["itemsPerPage"].clone()
        ),
        (json!(5), json!(2), json!(2))
    );
    assert_eq!(page.body["Resources"][0]["userName"], "user2@example.com");
    assert!(
        page.body["Resources"][0].get("emails").is_none()
            && page.body["Resources"][0]["id"].is_string()
    );

    // The Access side: Jane signed in earlier and holds a seat and a session.
    let users = format!("/accounts/{account}/access/users");
    let jane = server
        .post(
            &users,
            ADMIN_TOKEN,
            json!({"email": "jane.doe@example.com"}),
        )
        .await
        .result()
        .clone();
    let seat = jane["seat_uid"].as_str().unwrap_or_default();
    server
        .call(
            "PATCH",
            &format!("/accounts/{account}/access/seats"),
            ADMIN_TOKEN,
            Some(json!([{"seat_uid": seat, "access_seat": true, "gateway_seat": false}])),
        )
        .await;
    let store = Store::connect(&server.database_url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now = Timestamp::now();
    let session = Session {
        nonce: SessionNonce::generate(),
        account_id: AccountId::parse(&account).unwrap_or_else(|| panic!("account")),
        user_id: UserId::parse(jane["id"].as_str().unwrap_or_default())
            .unwrap_or_else(|| panic!("user")),
        name: "Jane".into(),
        issued_at: now,
        expires_at: now.plus_seconds(3600),
        revoked_at: None,
        apps: Default::default(),
        identity: Identity::default(),
    };
    store
        .record_session(&session)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let jane_path = format!("{users}/{}", jane["id"].as_str().unwrap_or_default());

    // Entra ID renames with a capitalised op and string booleans: no deprovisioning.
    let renamed = scim.call("PATCH", &format!("/Users/{id}"), Some(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "displayName", "value": "Jane Q. Doe"},
                       {"op": "Add", "path": "emails[type eq \"work\"].primary", "value": "True"}]}))).await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.body["displayName"], "Jane Q. Doe");
    assert_eq!(renamed.body["emails"][0]["primary"], true);
    let access_name = server.get(&jane_path, ADMIN_TOKEN).await.result()["name"].clone();
    assert_eq!(
        access_name, "Jane Q. Doe",
        "identity_update_behavior automatic copies the new name"
    );
    assert_eq!(
        server
            .get(&format!("{jane_path}/active_sessions"), ADMIN_TOKEN)
            .await
            .result()
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // Okta deactivates: sessions end and the seat is freed before the answer.
    let deactivated = scim
        .call(
            "PATCH",
            &format!("/Users/{id}"),
            Some(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": false}}]})),
        )
        .await;
    assert_eq!(deactivated.body["active"], false);
    assert_eq!(
        server
            .get(&format!("{jane_path}/active_sessions"), ADMIN_TOKEN)
            .await
            .result(),
        &json!([])
    );
    assert_eq!(
        server.get(&jane_path, ADMIN_TOKEN).await.result()["access_seat"],
        false
    );

    scim_error(
        &scim
            .call(
                "PATCH",
                &format!("/Users/{id}"),
                Some(json!({"Operations": [{"op": "remove", "path": "emails[type eq \"fax\"]"}]})),
            )
            .await,
        400,
        Some("noTarget"),
    );
    scim_error(
        &scim
            .call(
                "PATCH",
                &format!("/Users/{id}"),
                Some(json!({"Operations": [{"op": "replace", "path": "emails[", "value": 1}]})),
            )
            .await,
        400,
        Some("invalidPath"),
    );
    let unchanged = scim.call("GET", &format!("/Users/{id}"), None).await;
    assert_eq!(
        unchanged.body["emails"].as_array().map(Vec::len),
        Some(1),
        "a refused PATCH changes nothing"
    );

    let mut replaced = okta_user.clone();
    replaced["displayName"] = json!("J. Doe");
    let put = scim
        .call("PUT", &format!("/Users/{id}"), Some(replaced))
        .await;
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(put.body["meta"]["version"], "W/\"4\"");
    assert_eq!(
        scim.call_as(&other_secret, "GET", &format!("/Users/{id}"), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    let refreshed = server
        .post(
            &format!("{idps}/{idp_id}/refresh_scim_secret"),
            ADMIN_TOKEN,
            json!({}),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let new_secret = refreshed.result()["scim_config"]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(new_secret.starts_with("scim_") && new_secret != scim.secret);
    scim_error(&scim.call("GET", "/Users", None).await, 401, None);
    let scim = Scim {
        server: &server,
        base: scim.base.clone(),
        secret: new_secret,
    };
    let deleted = scim.call("DELETE", &format!("/Users/{id}"), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    scim_error(
        &scim.call("GET", &format!("/Users/{id}"), None).await,
        404,
        None,
    );
}

/// Creates users eight at a time, as a provider's bulk sync does.
async fn create_users(scim: &Scim<'_>, names: Vec<String>) -> Vec<String> {
    let bodies = names.into_iter().map(|name| json!({"userName": name}));
    create_users_from(scim, bodies.collect()).await
}

/// Creates a user of each body, eight at a time; their ids, in order.
pub async fn create_users_from(scim: &Scim<'_>, bodies: Vec<Value>) -> Vec<String> {
    let http = reqwest::Client::new();
    let mut ids = Vec::with_capacity(bodies.len());
    for chunk in bodies.chunks(8) {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, body) in chunk.iter().enumerate() {
            let request = http
                .post(format!("{}/Users", scim.base))
                .bearer_auth(&scim.secret)
                .header("content-type", "application/scim+json")
                .body(body.to_string());
            tasks.spawn(async move {
                let reply = request.send().await.unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(reply.status(), StatusCode::CREATED);
                let body: Value = reply.json().await.unwrap_or_default();
                (i, body["id"].as_str().unwrap_or_default().to_string())
            });
        }
        let mut batch: Vec<(usize, String)> = tasks.join_all().await;
        batch.sort();
        ids.extend(batch.into_iter().map(|(_, id)| id));
    }
    ids
}

async fn paging_five_thousand_users_while_others_come_and_go(db: TestDb) {
    let server = Server::start(&db).await;
    let (_, scim) = provider(&server).await;
    let originals = create_users(
        &scim,
        (0..5000).map(|i| format!("u{i:05}@example.com")).collect(),
    )
    .await;
    assert_eq!(originals.len(), 5000);

    // While a directory sync pages through, another one deletes some users and adds others.
    let churn_base = scim.base.clone();
    let churn_secret = scim.secret.clone();
    let doomed: Vec<String> = originals.iter().step_by(97).cloned().collect();
    let churn = tokio::spawn(async move {
        let http = reqwest::Client::new();
        for (i, id) in doomed.iter().enumerate() {
            let _ = http
                .delete(format!("{churn_base}/Users/{id}"))
                .bearer_auth(&churn_secret)
                .send()
                .await;
            let _ = http
                .post(format!("{churn_base}/Users"))
                .bearer_auth(&churn_secret)
                .header("content-type", "application/scim+json")
                .body(json!({"userName": format!("late{i}@example.com")}).to_string())
                .send()
                .await;
        }
        doomed
    });
    let mut seen: Vec<String> = Vec::new();
    let mut totals = Vec::new();
    let mut start = 1;
    loop {
        let page = scim
            .call("GET", &format!("/Users?startIndex={start}&count=100"), None)
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let resources = page.body["Resources"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if resources.is_empty() {
            break;
        }
        seen.extend(
            resources
                .iter()
                .filter_map(|r| r["id"].as_str().map(str::to_string)),
        );
        totals.push(page.body["totalResults"].as_u64().unwrap_or_default());
        start += resources.len();
        tokio::task::yield_now().await;
    }
    let deleted = churn.await.unwrap_or_default();
    let unique: std::collections::HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no user is seen twice");
    let missing: Vec<usize> = originals
        .iter()
        .enumerate()
        .filter(|(_, id)| !deleted.contains(id) && !unique.contains(id))
        .map(|(i, _)| i)
        .collect();
    assert!(
        totals.windows(2).all(|w| w[0] == w[1]),
        "every page counts the same snapshot: {totals:?}"
    );
    assert!(
        missing.is_empty(),
        "users existed throughout but were not seen: {} of {} seen; missing positions {:?}",
        seen.len(),
        originals.len(),
        &missing[..missing.len().min(20)]
    );
    assert!(
        seen.iter().all(|id| originals.contains(id)),
        "users created after the first page are not mixed in"
    );
}

async fn identity_update_behavior_decides_what_a_rename_does(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let store = Store::connect(&server.database_url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for (behavior, email) in [
        ("reauth", "re@example.com"),
        ("no_action", "no@example.com"),
    ] {
        let idp = server
            .post(
                &format!("/accounts/{account}/access/identity_providers"),
                ADMIN_TOKEN,
                json!({
                "name": behavior, "type": "oidc", "config": {
                    "client_id": "c", "client_secret": "s", "auth_url": "https://i.example.com/a",
                    "token_url": "https://i.example.com/t", "certs_url": "https://i.example.com/k"},
                "scim_config": {"enabled": true, "identity_update_behavior": behavior}}),
            )
            .await;
        let scim = Scim {
            server: &server,
            base: format!(
                "{}/scim/v2/{}",
                server.base,
                idp.result()["id"].as_str().unwrap_or_default()
            ),
            secret: idp.result()["scim_config"]["secret"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        };
        let access = server
            .post(
                &format!("/accounts/{account}/access/users"),
                ADMIN_TOKEN,
                json!({"email": email, "name": "Before"}),
            )
            .await;
        let path = format!(
            "/accounts/{account}/access/users/{}",
            access.result()["id"].as_str().unwrap_or_default()
        );
        let now = Timestamp::now();
        let session = Session {
            nonce: SessionNonce::generate(),
            account_id: AccountId::parse(&account).unwrap_or_else(|| panic!("account")),
            user_id: UserId::parse(access.result()["id"].as_str().unwrap_or_default())
                .unwrap_or_else(|| panic!("user")),
            name: "Before".into(),
            issued_at: now,
            expires_at: now.plus_seconds(3600),
            revoked_at: None,
            apps: Default::default(),
            identity: Identity::default(),
        };
        store
            .record_session(&session)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let pushed = scim
            .call(
                "POST",
                "/Users",
                Some(json!({"userName": email, "displayName": "Before"})),
            )
            .await;
        let id = pushed.body["id"].as_str().unwrap_or_default().to_string();
        scim.call(
            "PATCH",
            &format!("/Users/{id}"),
            Some(
                json!({"Operations": [{"op": "replace", "path": "displayName", "value": "After"}]}),
            ),
        )
        .await;
        let user = server.get(&path, ADMIN_TOKEN).await.result().clone();
        let sessions = server
            .get(&format!("{path}/active_sessions"), ADMIN_TOKEN)
            .await
            .result()
            .as_array()
            .map(Vec::len);
        assert_eq!(user["name"], "Before", "{behavior}: the Access name stays");
        let expected_sessions = if behavior == "reauth" { 0 } else { 1 };
        assert_eq!(sessions, Some(expected_sessions), "{behavior}: sessions");
    }
}

async fn deleted_scim_users_are_purged_with_other_tombstones(db: TestDb) {
    let server = Server::start(&db).await;
    let (_, scim) = provider(&server).await;
    let ids = create_users(
        &scim,
        vec!["kept@example.com".into(), "gone@example.com".into()],
    )
    .await;
    let deleted = scim
        .call("DELETE", &format!("/Users/{}", ids[1]), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let store = Store::connect(&server.database_url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now = Timestamp::now();
    let too_early = store
        .purge_expired_records(now, now.plus_seconds(-3600), now.plus_seconds(-3600))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(too_early.deleted_scim_users, 0, "a fresh tombstone stays");
    let purged = store
        .purge_expired_records(now, now.plus_seconds(-3600), now.plus_seconds(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(purged.deleted_scim_users, 1);
    let again = store
        .purge_expired_records(now, now.plus_seconds(-3600), now.plus_seconds(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.deleted_scim_users, 0);
    let listed = scim.call("GET", "/Users", None).await;
    assert_eq!(listed.body["totalResults"], 1);
    assert_eq!(listed.body["Resources"][0]["id"], ids[0].as_str());
}
