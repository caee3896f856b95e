//! SCIM lookups among many users: `eq` filters answered by the database,
//! paged correctly, a bounded in-memory filter for the rest, and group
//! member changes that leave the other members' rows alone.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Reply, Server, TestDb};
use crate::raw_db::RawDb;
use crate::scim::{Scim, create_users_from, provider, scim_error};

crate::on_each_backend!(
    eq_filters_find_and_page_among_twenty_thousand_users,
    adding_a_member_to_a_large_group_leaves_the_others_rows_alone,
);

/// Users made through the API, and users written straight to the database.
const THROUGH_API: usize = 2_000;
const STORED_DIRECTLY: usize = 18_000;

fn idp_of(scim: &Scim<'_>) -> String {
    scim.base.rsplit('/').next().unwrap_or_default().to_string()
}

/// `bulk-1` … `bulk-{count}` written straight to the database, as a version
/// that kept no search keys (e-mails, display names) left them. The
/// resource carries a work e-mail and a display name.
pub async fn users_stored_without_keys(server: &Server, account: &str, idp: &str, count: usize) {
    let db = RawDb::open(&server.database_url).await;
    let sql = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) \
         INSERT INTO scim_users (id, idp_id, account_id, user_name, user_name_key, link_email, \
           external_id, active, resource, version, created_at, updated_at) \
         SELECT 'bulk-' || i, $1, $2, 'Bulk' || i || '@Example.com', 'bulk' || i || '@example.com', \
           'bulk' || i || '@example.com', 'bulk-ext-' || i, 1 = 1, \
           '{{\"userName\":\"Bulk' || i || '@Example.com\",\"displayName\":\"Bulk ' || i || '\",\
             \"emails\":[{{\"value\":\"Bulk' || i || '@Example.com\",\"type\":\"work\"}}]}}', \
           1, 0, 0 FROM n"
    );
    assert_eq!(db.execute(&sql, &[idp, account]).await, count as u64);
    db.close().await;
}

fn encoded(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn filtered(scim: &Scim<'_>, path: &str, filter: &str, more: &str) -> Reply {
    let reply = scim
        .call(
            "GET",
            &format!("{path}?filter={}{more}", encoded(filter)),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{filter}: {}", reply.body);
    reply
}

fn ids(reply: &Reply) -> Vec<String> {
    reply.body["Resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect()
}

/// Every page of a filtered listing, `count` at a time: the ids in order,
/// and the `totalResults` of each page.
async fn every_page(
    scim: &Scim<'_>,
    path: &str,
    filter: &str,
    count: usize,
) -> (Vec<String>, Vec<u64>) {
    let (mut seen, mut totals) = (Vec::new(), Vec::new());
    let mut start = 1;
    loop {
        let page = filtered(
            scim,
            path,
            filter,
            &format!("&startIndex={start}&count={count}"),
        )
        .await;
        let batch = ids(&page);
        if batch.is_empty() {
            return (seen, totals);
        }
        assert_eq!(page.body["startIndex"], start);
        assert_eq!(page.body["itemsPerPage"], batch.len());
        totals.push(page.body["totalResults"].as_u64().unwrap_or_default());
        start += batch.len();
        seen.extend(batch);
    }
}

async fn eq_filters_find_and_page_among_twenty_thousand_users(db: TestDb) {
    let server = Server::start(&db).await;
    let (account, first) = provider(&server).await;
    let bodies = (0..THROUGH_API)
        .map(|i| {
            json!({"userName": format!("api{i:05}@example.com"), "externalId": format!("api-ext-{i}"),
                   "emails": [{"value": format!("API{i:05}@Example.com"), "type": "work"}]})
        })
        .collect();
    let api_users = create_users_from(&first, bodies).await;
    let members: Vec<Value> = api_users[..1500]
        .iter()
        .map(|id| json!({"value": id}))
        .collect();
    let group = first
        .call(
            "POST",
            "/Groups",
            Some(json!({"displayName": "Big", "members": members})),
        )
        .await;
    assert_eq!(group.status, StatusCode::CREATED, "{}", group.body);
    let group = group.body["id"].as_str().unwrap_or_default().to_string();
    users_stored_without_keys(&server, &account, &idp_of(&first), STORED_DIRECTLY).await;
    // Another process on the database fills their keys as it starts, and answers from then on.
    let other = Server::start(&db).await;
    let scim = Scim {
        server: &other,
        base: first.base.replace(&server.base, &other.base),
        secret: first.secret.clone(),
    };

    // Every user, in listing order: API users were made eight at a time, so
    // their order within each eight is the server's.
    let (everyone, totals) = every_page(&scim, "/Users", "", 1000).await;
    assert_eq!(everyone.len(), THROUGH_API + STORED_DIRECTLY);
    assert!(totals.iter().all(|t| *t == 20_000), "{totals:?}");
    let in_listing_order = |chosen: &[String]| -> Vec<String> {
        let chosen: std::collections::HashSet<&String> = chosen.iter().collect();
        everyone
            .iter()
            .filter(|id| chosen.contains(id))
            .cloned()
            .collect()
    };

    // `userName eq`, whatever the case, among 20,000.
    let started = std::time::Instant::now();
    let found = filtered(&scim, "/Users", r#"userName eq "API01234@EXAMPLE.COM""#, "").await;
    eprintln!("userName eq among 20,000 users: {:?}", started.elapsed());
    assert_eq!(found.body["totalResults"], 1, "{}", found.body);
    assert_eq!(ids(&found), [api_users[1234].clone()]);
    let stored = filtered(
        &scim,
        "/Users",
        r#"userName eq "bulk17999@example.com""#,
        "",
    )
    .await;
    assert_eq!(ids(&stored), ["bulk-17999"]);
    // E-mails, including those of users stored before they were keyed.
    for (filter, expected) in [
        (
            r#"emails.value eq "bulk123@EXAMPLE.com""#,
            "bulk-123".to_string(),
        ),
        (r#"emails eq "api00042@example.com""#, api_users[42].clone()),
        (
            r#"emails[value eq "Bulk9@Example.com"]"#,
            "bulk-9".to_string(),
        ),
        (r#"externalId eq "bulk-ext-77""#, "bulk-77".to_string()),
        // Narrowed by its `value eq` term, checked in memory.
        (
            r#"emails[type eq "work"].value eq "BULK42@example.com""#,
            "bulk-42".to_string(),
        ),
    ] {
        assert_eq!(
            ids(&filtered(&scim, "/Users", filter, "").await),
            [expected],
            "{filter}"
        );
    }
    let case_exact = filtered(&scim, "/Users", r#"externalId eq "BULK-EXT-77""#, "").await;
    assert_eq!(
        case_exact.body["totalResults"], 0,
        "externalId is case-exact"
    );

    // The group's members, page by page, through `groups.value`.
    let (members, totals) = every_page(
        &scim,
        "/Users",
        &format!(r#"groups.value eq "{group}""#),
        100,
    )
    .await;
    assert_eq!(members, in_listing_order(&api_users[..1500]));
    assert!(totals.iter().all(|t| *t == 1500), "{totals:?}");
    let holding = filtered(
        &scim,
        "/Groups",
        &format!(r#"members.value eq "{}""#, api_users[7]),
        "&excludedAttributes=members",
    )
    .await;
    assert_eq!(ids(&holding), std::slice::from_ref(&group));
    assert!(holding.body["Resources"][0].get("members").is_none());
    let outside = filtered(
        &scim,
        "/Groups",
        &format!(r#"members[value eq "{}"]"#, api_users[1700]),
        "",
    )
    .await;
    assert_eq!(outside.body["totalResults"], 0);

    // A hundred names at once, paged 40 at a time.
    let hundred: Vec<String> = (0..100)
        .map(|i| format!(r#"userName eq "api{:05}@example.com""#, i * 20))
        .collect();
    let (named, totals) = every_page(&scim, "/Users", &hundred.join(" or "), 40).await;
    let expected: Vec<String> = (0..100).map(|i| api_users[i * 20].clone()).collect();
    assert_eq!(named, in_listing_order(&expected));
    assert_eq!(totals, [100, 100, 100]);
    let everyone_else = filtered(
        &scim,
        "/Users",
        r#"not (userName eq "api00000@example.com")"#,
        "&count=1",
    )
    .await;
    assert_eq!(everyone_else.body["totalResults"], 19_999);

    // Sorted by the database, whatever the number of users.
    let sorted = scim
        .call(
            "GET",
            "/Users?sortBy=userName&sortOrder=descending&count=3",
            None,
        )
        .await;
    let mut names: Vec<String> = (0..THROUGH_API)
        .map(|i| format!("api{i:05}@example.com"))
        .chain((1..=STORED_DIRECTLY).map(|i| format!("bulk{i}@example.com")))
        .collect();
    names.sort();
    let shown: Vec<String> = sorted.body["Resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["userName"].as_str().map(str::to_lowercase))
        .collect();
    assert_eq!(
        shown,
        names.iter().rev().take(3).cloned().collect::<Vec<_>>()
    );

    // What the database cannot answer is checked in memory, over a bounded number of users.
    let narrowed = filtered(
        &scim,
        "/Users",
        r#"userName eq "api00001@example.com" and title pr"#,
        "",
    )
    .await;
    assert_eq!(narrowed.body["totalResults"], 0);
    for too_wide in ["/Users?filter=title%20co%20%22x%22", "/Users?sortBy=title"] {
        let refused = scim.call("GET", too_wide, None).await;
        scim_error(&refused, 400, Some("tooMany"));
        assert!(
            refused.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("10000")),
            "{}",
            refused.body
        );
    }
    let both = scim
        .call(
            "POST",
            "/.search",
            Some(
                json!({"filter": r#"userName eq "api00042@example.com" or displayName eq "BIG""#}),
            ),
        )
        .await;
    assert_eq!(both.body["totalResults"], 2, "{}", both.body);
    assert_eq!(ids(&both), [api_users[42].clone(), group]);
}

/// Each member's row of `group` as the database holds it: when it joined,
/// and where the row is (SQLite's rowid, PostgreSQL's ctid), which changes
/// when a row is deleted and inserted again.
async fn member_rows(db: &RawDb, group: &str) -> std::collections::BTreeMap<String, String> {
    let place = match db {
        RawDb::Sqlite(_) => "CAST(rowid AS TEXT)",
        RawDb::Postgres(_) => "CAST(ctid AS TEXT)",
    };
    db.pairs(&format!(
        "SELECT user_id, CAST(added_at AS TEXT) || ' at ' || {place} \
         FROM scim_group_members WHERE group_id = '{group}'"
    ))
    .await
    .into_iter()
    .collect()
}

async fn adding_a_member_to_a_large_group_leaves_the_others_rows_alone(db: TestDb) {
    let server = Server::start(&db).await;
    let (account, scim) = provider(&server).await;
    users_stored_without_keys(&server, &account, &idp_of(&scim), 3_000).await;
    // Sent newest first, so that rows written again would land elsewhere.
    let members: Vec<Value> = (1..3_000)
        .rev()
        .map(|i| json!({"value": format!("bulk-{i}")}))
        .collect();
    let created = scim
        .call(
            "POST",
            "/Groups",
            Some(json!({"displayName": "Everyone", "members": members})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let group = created.body["id"].as_str().unwrap_or_default().to_string();
    let raw = RawDb::open(&server.database_url).await;
    let before = member_rows(&raw, &group).await;
    assert_eq!(before.len(), 2_999);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    let patch = |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
    let added = scim
        .call(
            "PATCH",
            &format!("/Groups/{group}"),
            Some(patch(
                json!([{"op": "add", "path": "members", "value": [{"value": "bulk-3000"}]}]),
            )),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert_eq!(added.body["members"].as_array().map(Vec::len), Some(3_000));
    let after = member_rows(&raw, &group).await;
    assert_eq!(after.len(), 3_000);
    let untouched = before
        .iter()
        .filter(|(user, row)| after.get(*user) == Some(row))
        .count();
    assert_eq!(
        untouched, 2_999,
        "every member but the new one keeps its row as it was"
    );
    let joined = after.get("bulk-3000").cloned().unwrap_or_default();
    let joined_at = |row: &str| {
        row.split(' ')
            .next()
            .unwrap_or_default()
            .parse::<i64>()
            .unwrap_or(0)
    };
    assert!(
        before
            .values()
            .all(|row| joined_at(row) < joined_at(&joined))
    );

    // Taking one out, by filter or by replacing the list, deletes that row alone.
    let removed = scim
        .call(
            "PATCH",
            &format!("/Groups/{group}"),
            Some(patch(
                json!([{"op": "remove", "path": "members[value eq \"bulk-5\"]"}]),
            )),
        )
        .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
    let mut expected = after.clone();
    expected.remove("bulk-5");
    assert_eq!(member_rows(&raw, &group).await, expected);
    let kept: Vec<Value> = expected
        .keys()
        .filter(|u| *u != "bulk-6")
        .map(|u| json!({"value": u}))
        .collect();
    let replaced = scim
        .call(
            "PUT",
            &format!("/Groups/{group}"),
            Some(json!({"displayName": "Everyone", "members": kept})),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    expected.remove("bulk-6");
    assert_eq!(member_rows(&raw, &group).await, expected);

    // A member that is not a user of the provider fails the change, which leaves nothing half-done.
    let unknown = scim
        .call(
            "PATCH",
            &format!("/Groups/{group}"),
            Some(patch(json!([
                {"op": "add", "path": "members", "value": [{"value": "bulk-6"}, {"value": "nobody"}]},
                {"op": "remove", "path": "members[value eq \"bulk-7\"]"}]))),
        )
        .await;
    scim_error(&unknown, 400, Some("invalidValue"));
    assert_eq!(member_rows(&raw, &group).await, expected);
    raw.close().await;
}
