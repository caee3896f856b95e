use reqwest::StatusCode;
use serde_json::{Value, json};

use accessd::domain::user::{AccessUser, Email, UserId};
use accessd::domain::{AccountId, Timestamp};
use accessd::store::Store;

use crate::common::{ADMIN_TOKEN, Server, TestDb};

const AUDIT_LOGS_READ: &str = "b05b28e839c54467a7d6cba5d3abb5a3";
const SEATS_WRITE: &str = "a1a6298e52584c8fb6313760a30c681e";

crate::on_each_backend!(
    user_lifecycle,
    user_filters_combine,
    paging_neither_skips_nor_repeats_while_users_change,
    paging_survives_twenty_thousand_deletions_during_listings,
    pages_of_one_listing_come_from_two_processes,
    junk_parameters_pin_few_listings,
    user_permissions_follow_the_groups,
);

fn users_path(account: &str) -> String {
    format!("/accounts/{account}/access/users")
}

async fn create(server: &Server, account: &str, email: &str, name: Option<&str>) -> Value {
    let mut body = json!({ "email": email });
    if let Some(name) = name {
        body["name"] = json!(name);
    }
    let reply = server.post(&users_path(account), ADMIN_TOKEN, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.result().clone()
}

fn ids(reply: &crate::common::Reply) -> Vec<String> {
    reply
        .result()
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["id"].as_str().map(str::to_string))
        .collect()
}

async fn user_lifecycle(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let users = users_path(&account);

    let jane = create(&server, &account, "Jane.Doe@Example.com", Some("Jane Doe")).await;
    let keys: Vec<&str> = jane
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        [
            "access_seat",
            "active_device_count",
            "created_at",
            "email",
            "gateway_seat",
            "id",
            "last_successful_login",
            "name",
            "seat_uid",
            "uid",
            "updated_at"
        ]
    );
    assert_eq!(jane["email"], "Jane.Doe@Example.com", "stored as given");
    assert_eq!(jane["access_seat"], false);
    assert_eq!(jane["gateway_seat"], false);
    assert_eq!(jane["active_device_count"], 0);
    assert_eq!(jane["last_successful_login"], Value::Null);
    assert_eq!(jane["uid"], jane["id"]);
    assert_ne!(jane["seat_uid"], jane["id"]);
    let id = jane["id"].as_str().unwrap_or_default().to_string();

    let nameless = create(&server, &account, "nameless@example.com", None).await;
    assert_eq!(nameless["name"], Value::Null);

    let duplicate = server
        .post(
            &users,
            ADMIN_TOKEN,
            json!({"email": "jane.doe@EXAMPLE.com"}),
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(duplicate.error_code(), 12131);
    assert_eq!(
        duplicate
            .headers
            .get("x-should-retry")
            .and_then(|v| v.to_str().ok()),
        Some("false")
    );

    for (body, pointer) in [
        (json!({"email": "not-an-email"}), "/email"),
        (json!({"email": ""}), "/email"),
        (json!({"name": "No Email"}), ""),
        (
            json!({"email": "ok@example.com", "name": "x".repeat(300)}),
            "/name",
        ),
        (json!({"email": "ok@example.com", "role": "admin"}), "/role"),
    ] {
        let reply = server.post(&users, ADMIN_TOKEN, body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.error_code(), 12002, "{body}: {}", reply.body);
        assert!(
            reply.body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("access.api.error.invalid_request: "))
        );
        if !pointer.is_empty() {
            assert_eq!(
                reply.body["errors"][0]["source"]["pointer"], pointer,
                "{body}"
            );
        }
    }

    let path = format!("{users}/{id}");
    let fetched = server.get(&path, ADMIN_TOKEN).await;
    assert_eq!(fetched.result(), &jane);

    let renamed = server
        .put(
            &path,
            ADMIN_TOKEN,
            json!({"email": "JANE.DOE@example.com", "name": "Jane Q. Doe"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.result()["name"], "Jane Q. Doe");
    assert_eq!(renamed.result()["email"], "Jane.Doe@Example.com");
    assert_ne!(renamed.result()["updated_at"], jane["updated_at"]);
    let other_email = server
        .put(
            &path,
            ADMIN_TOKEN,
            json!({"email": "someone@example.com", "name": "X"}),
        )
        .await;
    assert_eq!(other_email.status, StatusCode::BAD_REQUEST);
    assert!(
        other_email.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot be changed"))
    );
    let name_missing = server
        .put(&path, ADMIN_TOKEN, json!({"email": "jane.doe@example.com"}))
        .await;
    assert_eq!(name_missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        server.get(&path, ADMIN_TOKEN).await.result()["name"],
        "Jane Q. Doe",
        "refused updates change nothing"
    );

    for missing in [
        format!("{users}/00000000-0000-4000-8000-000000000000"),
        format!("{users}/not-a-uuid"),
    ] {
        let reply = server.get(&missing, ADMIN_TOKEN).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.error_code(), 12130);
    }

    let deleted = server.delete(&path, ADMIN_TOKEN).await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    assert_eq!(deleted.result(), &json!({"id": id}));
    assert_eq!(
        server.get(&path, ADMIN_TOKEN).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server.delete(&path, ADMIN_TOKEN).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server
            .get(&format!("{path}/active_sessions"), ADMIN_TOKEN)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let again = create(&server, &account, "jane.doe@example.com", None).await;
    assert_ne!(
        again["id"].as_str(),
        Some(id.as_str()),
        "a returning user is a new user"
    );
    let listed = server.get(&users, ADMIN_TOKEN).await;
    assert_eq!(listed.body["result_info"]["total_count"], 2);
}

async fn user_filters_combine(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let other = server.create_account("Other").await;
    create(&server, &account, "ann@alpha.example", Some("Ann Smith")).await;
    create(&server, &account, "bob@beta.example", Some("Bob Smithers")).await;
    create(
        &server,
        &account,
        "carol@alpha.example",
        Some("Carol Jones"),
    )
    .await;
    create(&server, &account, "dan_50%@gamma.example", None).await;
    create(&server, &other, "ann@alpha.example", Some("Ann Elsewhere")).await;

    let emails = |reply: &crate::common::Reply| -> Vec<String> {
        reply
            .result()
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|u| u["email"].as_str().map(str::to_string))
            .collect()
    };
    let list = |query: &'static str| {
        let path = format!("{}?{query}", users_path(&account));
        let server = &server;
        async move { emails(&server.get(&path, ADMIN_TOKEN).await) }
    };
    assert_eq!(
        list("email=ANN%40alpha.example").await,
        ["ann@alpha.example"]
    );
    assert_eq!(
        list("email=ann%40alpha").await,
        Vec::<String>::new(),
        "email is exact"
    );
    assert_eq!(
        list("name=smith").await,
        ["ann@alpha.example", "bob@beta.example"]
    );
    assert_eq!(
        list("search=ALPHA").await,
        ["ann@alpha.example", "carol@alpha.example"]
    );
    assert_eq!(list("search=jones").await, ["carol@alpha.example"]);
    assert_eq!(list("search=alpha&name=smith").await, ["ann@alpha.example"]);
    assert_eq!(
        list("search=50%25").await,
        ["dan_50%@gamma.example"],
        "wildcards match literally"
    );
    assert_eq!(list("search=n_5").await, ["dan_50%@gamma.example"]);
    assert_eq!(list("search=%25").await, ["dan_50%@gamma.example"]);
    assert_eq!(
        list("search=Ann+Smith").await,
        ["ann@alpha.example"],
        "+ is a space"
    );
    assert_eq!(list("search=Ann%20Smith").await, ["ann@alpha.example"]);
    let counted = server
        .get(
            &format!("{}?name=smith&per_page=1", users_path(&account)),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(
        counted.body["result_info"],
        json!({"page": 1, "per_page": 1, "count": 1, "total_count": 2, "total_pages": 2})
    );
    for bad in ["per_page=0", "per_page=1001", "page=0", "page=x"] {
        let reply = server
            .get(&format!("{}?{bad}", users_path(&account)), ADMIN_TOKEN)
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reply.error_code(), 12091, "{bad}");
    }
}

async fn paging_neither_skips_nor_repeats_while_users_change(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let users = users_path(&account);
    let mut originals = Vec::new();
    for i in 0..25 {
        originals.push(
            create(&server, &account, &format!("u{i:02}@example.com"), None).await["id"].clone(),
        );
    }
    let page = |n: u32| format!("{users}?per_page=10&page={n}");

    let first = server
        .get(&format!("{users}?per_page=10"), ADMIN_TOKEN)
        .await;
    assert_eq!(
        first.body["result_info"],
        json!({"page": 1, "per_page": 10, "count": 10, "total_count": 25, "total_pages": 3})
    );
    let mut seen = ids(&first);
    // Between pages: one already-seen user and one not-yet-seen user go, two new ones come.
    for gone in [&originals[2], &originals[14]] {
        let path = format!("{users}/{}", gone.as_str().unwrap_or_default());
        assert_eq!(
            server.delete(&path, ADMIN_TOKEN).await.status,
            StatusCode::ACCEPTED
        );
    }
    create(&server, &account, "late1@example.com", None).await;
    create(&server, &account, "late2@example.com", None).await;
    for n in 2.. {
        let reply = server.get(&page(n), ADMIN_TOKEN).await;
        let batch = ids(&reply);
        if batch.is_empty() {
            break;
        }
        seen.extend(batch);
    }
    let expected: Vec<String> = originals
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    assert_eq!(
        seen, expected,
        "every user present at the first page is seen once, in order"
    );

    // A new listing starts from the present.
    let fresh = server
        .get(&format!("{users}?per_page=100"), ADMIN_TOKEN)
        .await;
    let now_ids = ids(&fresh);
    assert_eq!(now_ids.len(), 25);
    assert!(!now_ids.contains(&expected[2]) && !now_ids.contains(&expected[14]));
    assert_eq!(fresh.body["result_info"]["total_count"], 25);
    let past_end = server
        .get(&format!("{users}?per_page=100&page=2"), ADMIN_TOKEN)
        .await;
    assert_eq!(past_end.status, StatusCode::OK);
    assert_eq!(past_end.result(), &json!([]));
}

/// `count` users of `account` written through the store, in one go; their
/// ids, in creation order.
async fn many_users(store: &Store, account: &str, count: usize) -> Vec<UserId> {
    let account = AccountId::parse(account).unwrap_or_else(|| panic!("account id {account}"));
    let now = Timestamp::now();
    let users: Vec<AccessUser> = (0..count)
        .map(|i| {
            let email =
                Email::parse(&format!("many{i:06}@example.com")).unwrap_or_else(|e| panic!("{e}"));
            AccessUser::new(account.clone(), email, None, now)
        })
        .collect();
    store
        .create_users_bulk(&users)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    users.into_iter().map(|u| u.id).collect()
}

async fn store_of(server: &Server) -> Store {
    Store::connect(&server.database_url)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Gathers PostgreSQL's table statistics after a bulk load, as autovacuum
/// would soon after one (the test server runs without it): without them,
/// a deletion's generic plan walks the account's e-mail index.
async fn analyze_postgres(server: &Server) {
    if server.database_url.starts_with("postgres") {
        let raw = crate::raw_db::RawDb::open(&server.database_url).await;
        raw.execute("ANALYZE", &[]).await;
        raw.close().await;
    }
}

/// The ids at positions `chosen` picks, and the others, each in order.
fn split(ids: &[UserId], chosen: impl Fn(usize) -> bool) -> (Vec<UserId>, Vec<UserId>) {
    let (mut picked, mut others) = (Vec::new(), Vec::new());
    for (i, id) in ids.iter().enumerate() {
        if chosen(i) {
            picked.push(id.clone());
        } else {
            others.push(id.clone());
        }
    }
    (picked, others)
}

fn strings(ids: &[UserId]) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}

/// Reads `per_page` users at a time until a page comes back empty, page
/// `n` from `servers[(n - 1) % len]`; after page `n`, deletes
/// `deletions[n - 1]` through the store. The ids seen, and each page's total.
async fn list_while_deleting(
    servers: &[&Server],
    store: &Store,
    account: &str,
    per_page: usize,
    deletions: &[Vec<UserId>],
) -> (Vec<String>, Vec<u64>) {
    let account_id = AccountId::parse(account).unwrap_or_else(|| panic!("account id {account}"));
    let (mut seen, mut totals) = (Vec::new(), Vec::new());
    for n in 1.. {
        let server = servers[(n - 1) % servers.len()];
        let reply = server
            .get(
                &format!("{}?per_page={per_page}&page={n}", users_path(account)),
                ADMIN_TOKEN,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let batch = ids(&reply);
        if batch.is_empty() {
            return (seen, totals);
        }
        totals.push(
            reply.body["result_info"]["total_count"]
                .as_u64()
                .unwrap_or_default(),
        );
        seen.extend(batch);
        for gone in deletions.get(n - 1).into_iter().flatten() {
            let deleted = store.delete_user(&account_id, gone, Timestamp::now()).await;
            assert!(matches!(deleted, Ok(true)), "{deleted:?}");
        }
    }
    unreachable!("the pages end")
}

/// Two listings of 30,000 users, each with thousands deleted between its
/// pages (20,000 in all), and the second starting with 12,000 tombstones
/// on record: every user present at a listing's first page is seen once, in order.
async fn paging_survives_twenty_thousand_deletions_during_listings(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Mass").await;
    let store = store_of(&server).await;
    let everyone = many_users(&store, &account, 30_000).await;
    analyze_postgres(&server).await;
    let (doomed, spared) = split(&everyone, |i| i % 5 < 2);
    assert_eq!(doomed.len(), 12_000);
    // Seen and unseen users alike go: each batch spreads over the whole listing.
    let spread = |ids: &[UserId], batches: usize| -> Vec<Vec<UserId>> {
        (0..batches)
            .map(|b| ids.iter().skip(b).step_by(batches).cloned().collect())
            .collect()
    };
    let started = std::time::Instant::now();
    let (seen, first_totals) =
        list_while_deleting(&[&server], &store, &account, 1000, &spread(&doomed, 30)).await;
    assert_eq!(
        seen,
        strings(&everyone),
        "the first listing shows all 30,000 once, in order"
    );

    let (late, kept) = split(&spared, |i| i % 9 < 4);
    assert_eq!(late.len(), 8_000);
    let (seen, totals) =
        list_while_deleting(&[&server], &store, &account, 1000, &spread(&late, 18)).await;
    assert_eq!(
        seen,
        strings(&spared),
        "the second listing shows the 18,000 left, once, in order"
    );
    assert!(totals.iter().all(|t| *t == 18_000), "{totals:?}");
    assert!(
        first_totals.iter().all(|t| *t == 30_000),
        "{first_totals:?}"
    );
    eprintln!(
        "two listings with 20,000 deletions: {:?}",
        started.elapsed()
    );

    let now = server
        .get(&format!("{}?per_page=5", users_path(&account)), ADMIN_TOKEN)
        .await;
    assert_eq!(now.body["result_info"]["total_count"], kept.len());
    assert_eq!(ids(&now), strings(&kept[..5]));
}

/// Page 1 from one process, the later pages from another on the same
/// database, with users deleted and created in between: for the v4 users
/// listing and for a SCIM listing alike.
async fn pages_of_one_listing_come_from_two_processes(db: TestDb) {
    let a = Server::start(&db).await;
    let b = Server::start(&db).await;
    let account = a.create_account("Shared").await;
    let store = store_of(&a).await;
    let everyone = many_users(&store, &account, 5_000).await;
    let first = a
        .get(
            &format!("{}?per_page=700", users_path(&account)),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(first.body["result_info"]["total_count"], 5_000);
    let mut seen = ids(&first);
    for gone in [3, 800, 4_500, 4_999] {
        let path = format!("{}/{}", users_path(&account), everyone[gone]);
        assert_eq!(
            b.delete(&path, ADMIN_TOKEN).await.status,
            StatusCode::ACCEPTED
        );
    }
    create(&b, &account, "late@example.com", None).await;
    let mut totals = Vec::new();
    for n in 2.. {
        let reply = b
            .get(
                &format!("{}?per_page=700&page={n}", users_path(&account)),
                ADMIN_TOKEN,
            )
            .await;
        let batch = ids(&reply);
        if batch.is_empty() {
            break;
        }
        totals.push(reply.body["result_info"]["total_count"].clone());
        seen.extend(batch);
    }
    assert_eq!(seen, strings(&everyone));
    assert!(totals.iter().all(|t| *t == 5_000), "{totals:?}");

    let (scim_account, scim) = crate::scim::provider(&a).await;
    let idp = scim.base.rsplit('/').next().unwrap_or_default().to_string();
    crate::scim_lookups::users_stored_without_keys(&a, &scim_account, &idp, 1_200).await;
    let scim_b = crate::scim::Scim {
        server: &b,
        base: scim.base.replace(&a.base, &b.base),
        secret: scim.secret.clone(),
    };
    let page_of = |reply: &crate::common::Reply| -> Vec<String> {
        reply.body["Resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["id"].as_str().map(str::to_string))
            .collect()
    };
    let first = scim.call("GET", "/Users?count=500", None).await;
    let mut seen = page_of(&first);
    for gone in ["bulk-2", "bulk-900"] {
        let deleted = scim_b.call("DELETE", &format!("/Users/{gone}"), None).await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    }
    let late = scim_b
        .call(
            "POST",
            "/Users",
            Some(json!({"userName": "late@example.com"})),
        )
        .await;
    assert_eq!(late.status, StatusCode::CREATED);
    for start in [501, 1001] {
        let page = scim_b
            .call("GET", &format!("/Users?count=500&startIndex={start}"), None)
            .await;
        assert_eq!(page.body["totalResults"], 1_200, "{}", page.body);
        seen.extend(page_of(&page));
    }
    let expected: Vec<String> = (1..=1_200).map(|i| format!("bulk-{i}")).collect();
    assert_eq!(seen, expected);
}

/// Listings that differ only in junk parameters are pinned apart, but one
/// caller keeps at most 16 of them in the database.
async fn junk_parameters_pin_few_listings(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Junk").await;
    for i in 0..3 {
        create(&server, &account, &format!("j{i}@example.com"), None).await;
    }
    let users = users_path(&account);
    let pinned = server
        .get(&format!("{users}?per_page=1"), ADMIN_TOKEN)
        .await;
    assert_eq!(ids(&pinned).len(), 1);
    for i in 0..100 {
        let junk = format!("{users}?per_page=1&junk{i}={}", "x".repeat(2_000));
        assert_eq!(server.get(&junk, ADMIN_TOKEN).await.status, StatusCode::OK);
    }
    let raw = crate::raw_db::RawDb::open(&server.database_url).await;
    let rows = raw
        .pairs("SELECT caller, CAST(COUNT(*) AS TEXT) FROM listing_snapshots GROUP BY caller")
        .await;
    raw.close().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].1, "16", "{rows:?}");
    // A listing read whole in one page pins nothing.
    let whole = server
        .get(&format!("{users}?per_page=50&whole=1"), ADMIN_TOKEN)
        .await;
    assert_eq!(ids(&whole).len(), 3);
}

async fn user_permissions_follow_the_groups(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let foreign = server.create_account("Foreign").await;
    let users = users_path(&account);
    let (_, reader) = server.create_token(&account, &[AUDIT_LOGS_READ]).await;
    let (_, seats) = server.create_token(&account, &[SEATS_WRITE]).await;
    let (_, outsider) = server
        .create_token(&foreign, &[AUDIT_LOGS_READ, SEATS_WRITE])
        .await;

    let made = server
        .post(&users, &seats, json!({"email": "made@example.com"}))
        .await;
    assert_eq!(made.status, StatusCode::CREATED);
    let path = format!(
        "{users}/{}",
        made.result()["id"].as_str().unwrap_or_default()
    );

    assert_eq!(server.get(&users, &reader).await.status, StatusCode::OK);
    assert_eq!(server.get(&path, &reader).await.status, StatusCode::OK);
    assert_eq!(
        server
            .get(&format!("{path}/failed_logins"), &reader)
            .await
            .status,
        StatusCode::OK
    );
    for (method, body) in [
        ("POST", Some(json!({"email": "x@example.com"}))),
        (
            "PUT",
            Some(json!({"email": "made@example.com", "name": "n"})),
        ),
        ("DELETE", None),
    ] {
        let target = if method == "POST" {
            users.clone()
        } else {
            path.clone()
        };
        let refused = server.call(method, &target, &reader, body).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{method}");
        assert_eq!(refused.error_code(), 10000);
    }
    assert_eq!(
        server.get(&users, &seats).await.status,
        StatusCode::FORBIDDEN
    );
    let renamed = server
        .put(
            &path,
            &seats,
            json!({"email": "made@example.com", "name": "Made"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK);
    assert_eq!(
        server.get(&users, &outsider).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        server.get(&path, &outsider).await.status,
        StatusCode::FORBIDDEN
    );
    let foreign_view = server
        .get(
            &format!(
                "{}/{}",
                users_path(&foreign),
                made.result()["id"].as_str().unwrap_or_default()
            ),
            &outsider,
        )
        .await;
    assert_eq!(
        foreign_view.status,
        StatusCode::NOT_FOUND,
        "a user is only visible in its own account"
    );
    assert_eq!(
        server.delete(&path, &seats).await.status,
        StatusCode::ACCEPTED
    );
}
