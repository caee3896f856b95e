use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::login::LoginBed;
use crate::common::{ADMIN_TOKEN, Reply, Server, TestDb};

const GROUPS_READ: &str = "26bc23f853634eb4bff59983b9064fde";
const GROUPS_WRITE: &str = "bfe0d8686a584fa680f4c53b5eb0de6d";
const APPS_WRITE: &str = "1e13c5124ca64b72b1969a67e8829049";
/// Groups one chain of `group` rules may pass through (`MAX_NESTING`).
const MAX_NESTING: usize = 10;

crate::on_each_backend!(
    groups_lifecycle,
    group_references_are_checked,
    group_rules_are_bounded,
    groups_need_the_organization_groups_permissions,
    a_policy_naming_an_access_group_admits_its_members_only,
);

fn id_of(reply: &Reply) -> String {
    reply.result()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn email(address: &str) -> Value {
    json!({"email": {"email": address}})
}

fn group_rule(id: &str) -> Value {
    json!({"group": {"id": id}})
}

/// Creates a group including `include`; returns its id.
async fn create(server: &Server, groups: &str, name: &str, include: Value) -> String {
    let reply = server
        .post(
            groups,
            ADMIN_TOKEN,
            json!({"name": name, "include": include}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    id_of(&reply)
}

fn assert_invalid(reply: &Reply, pointer: &str, context: &str) {
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "{context}: {}",
        reply.body
    );
    assert_eq!(reply.error_code(), 12002, "{context}");
    assert_eq!(
        reply.body["errors"][0]["source"]["pointer"], pointer,
        "{context}: {}",
        reply.body
    );
}

async fn groups_lifecycle(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let groups = format!("/accounts/{account}/access/groups");
    let created = server
        .post(
            &groups,
            ADMIN_TOKEN,
            json!({
                "name": "Staff", "is_default": true,
                "include": [{"email_domain": {"domain": "example.com"}}],
                "exclude": [email("intern@example.com")],
                "require": [{"geo": {"country_code": "DE"}}]
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let group = created.result().clone();
    assert!(group.get("is_default").is_none(), "{group}");
    assert_eq!(group["name"], "Staff");
    assert_eq!(group["exclude"], json!([email("intern@example.com")]));
    assert_eq!(group["require"], json!([{"geo": {"country_code": "DE"}}]));
    assert!(group["created_at"].is_string() && group["updated_at"].is_string());
    let id = id_of(&created);
    let one = format!("{groups}/{id}");

    let fetched = server.get(&one, ADMIN_TOKEN).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.result(), &group);

    create(&server, &groups, "Contractors", json!([{"everyone": {}}])).await;
    let all = server.get(&groups, ADMIN_TOKEN).await;
    assert_eq!(all.body["result_info"]["total_count"], 2, "{}", all.body);
    assert_eq!(all.body["result_info"]["per_page"], 100);
    let named = server
        .get(&format!("{groups}?name=staff"), ADMIN_TOKEN)
        .await;
    assert_eq!(named.result().as_array().map(Vec::len), Some(1));
    assert_eq!(named.result()[0]["id"], id.as_str());
    let partial = server.get(&format!("{groups}?name=sta"), ADMIN_TOKEN).await;
    assert_eq!(partial.result(), &json!([]));
    let search = server
        .get(&format!("{groups}?search=TRACT"), ADMIN_TOKEN)
        .await;
    assert_eq!(search.result()[0]["name"], "Contractors");
    let paged = server
        .get(&format!("{groups}?per_page=1&page=2"), ADMIN_TOKEN)
        .await;
    assert_eq!(paged.result()[0]["name"], "Contractors");
    for bad in ["per_page=1001", "per_page=0", "page=0"] {
        let reply = server.get(&format!("{groups}?{bad}"), ADMIN_TOKEN).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
    }

    let mut sent_back = group.clone();
    sent_back["name"] = json!("Staff only");
    sent_back
        .as_object_mut()
        .map(|o| o.remove("exclude").and(o.remove("require")));
    let updated = server.put(&one, ADMIN_TOKEN, sent_back).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.result()["name"], "Staff only");
    assert_eq!(
        updated.result()["exclude"],
        json!([]),
        "omitted lists empty"
    );
    assert_eq!(updated.result()["require"], json!([]));
    assert!(updated.result().get("is_default").is_none());

    let missing_include = server.put(&one, ADMIN_TOKEN, json!({"name": "x"})).await;
    assert_eq!(missing_include.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing_include.error_code(), 12002, "include is required");

    let other = server.create_account("Elsewhere").await;
    let foreign = server
        .get(
            &format!("/accounts/{other}/access/groups/{id}"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(
        foreign.status,
        StatusCode::NOT_FOUND,
        "another account's group"
    );

    let deleted = server.delete(&one, ADMIN_TOKEN).await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.body);
    assert_eq!(deleted.result(), &json!({"id": id}));
    let gone = server.get(&one, ADMIN_TOKEN).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error_code(), 12130);
    let malformed = server
        .get(&format!("{groups}/not-a-uuid"), ADMIN_TOKEN)
        .await;
    assert_eq!(malformed.status, StatusCode::NOT_FOUND);
}

/// Unknown ids, cycles, nesting past the limit, and deleting a group still
/// named by a policy or a group are all refused.
async fn group_references_are_checked(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let groups = format!("/accounts/{account}/access/groups");
    let policies = format!("/accounts/{account}/access/policies");
    let unknown = "6f1c1b0e-8a57-4b43-9c1e-3f0a5f3b7d21";

    let refused = server
        .post(
            &groups,
            ADMIN_TOKEN,
            json!({"name": "g", "include": [{"everyone": {}}], "exclude": [group_rule(unknown)]}),
        )
        .await;
    assert_invalid(&refused, "/exclude/0", "unknown group in a group");
    let refused = server
        .post(
            &policies,
            ADMIN_TOKEN,
            json!({"name": "p", "decision": "allow", "include": [group_rule("eng")]}),
        )
        .await;
    assert_invalid(&refused, "/include/0", "unknown group in a policy");

    let base = create(&server, &groups, "Base", json!([email("ann@example.com")])).await;
    let upper = create(
        &server,
        &groups,
        "Upper",
        json!([group_rule(&base.to_uppercase())]),
    )
    .await;
    let upper_one = format!("{groups}/{upper}");
    let stored = server.get(&upper_one, ADMIN_TOKEN).await;
    assert_eq!(
        stored.result()["include"],
        json!([group_rule(&base)]),
        "ids are stored in canonical form"
    );

    let itself = server
        .put(
            &upper_one,
            ADMIN_TOKEN,
            json!({"name": "Upper", "include": [group_rule(&upper)]}),
        )
        .await;
    assert_invalid(&itself, "/include/0", "a group naming itself");
    let back = server
        .put(
            &format!("{groups}/{base}"),
            ADMIN_TOKEN,
            json!({"name": "Base", "include": [{"everyone": {}}], "require": [group_rule(&upper)]}),
        )
        .await;
    assert_invalid(&back, "/require/0", "a cycle through two groups");

    // A chain of MAX_NESTING groups is allowed; one more is not, whether
    // the new group is put on top or the bottom one starts naming another.
    let mut chain = vec![base.clone()];
    while chain.len() < MAX_NESTING {
        let below = chain.last().cloned().unwrap_or_default();
        let name = format!("Level {}", chain.len());
        chain.push(create(&server, &groups, &name, json!([group_rule(&below)])).await);
    }
    let top = chain.last().cloned().unwrap_or_default();
    let too_high = server
        .post(
            &groups,
            ADMIN_TOKEN,
            json!({"name": "Top", "include": [group_rule(&top)]}),
        )
        .await;
    assert_invalid(&too_high, "/include/0", "one level above the limit");
    let leaf = create(&server, &groups, "Leaf", json!([email("bob@example.com")])).await;
    let too_low = server
        .put(
            &format!("{groups}/{base}"),
            ADMIN_TOKEN,
            json!({"name": "Base", "include": [group_rule(&leaf)]}),
        )
        .await;
    assert_invalid(&too_low, "/include/0", "one level below the limit");
    let message = too_low.body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("at most 10"), "{message}");

    // Still named by `Upper`: not deleted.
    let named_by_group = server
        .delete(&format!("{groups}/{base}"), ADMIN_TOKEN)
        .await;
    assert_eq!(
        named_by_group.status,
        StatusCode::CONFLICT,
        "{}",
        named_by_group.body
    );
    assert_eq!(named_by_group.error_code(), 12131);
    let policy = server
        .post(
            &policies,
            ADMIN_TOKEN,
            json!({"name": "p", "decision": "allow", "include": [{"everyone": {}}],
                   "exclude": [group_rule(&leaf)]}),
        )
        .await;
    assert_eq!(policy.status, StatusCode::CREATED, "{}", policy.body);
    let named_by_policy = server
        .delete(&format!("{groups}/{leaf}"), ADMIN_TOKEN)
        .await;
    assert_eq!(
        named_by_policy.status,
        StatusCode::CONFLICT,
        "{}",
        named_by_policy.body
    );

    let policy_one = format!("{policies}/{}", id_of(&policy));
    let freed = server
        .put(
            &policy_one,
            ADMIN_TOKEN,
            json!({"name": "p", "decision": "allow", "include": [{"everyone": {}}]}),
        )
        .await;
    assert_eq!(freed.status, StatusCode::OK, "{}", freed.body);
    let deleted = server
        .delete(&format!("{groups}/{leaf}"), ADMIN_TOKEN)
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.body);
    // Top down, each group is free once the ones naming it are gone.
    for id in std::iter::once(&upper).chain(chain.iter().rev()) {
        let reply = server.delete(&format!("{groups}/{id}"), ADMIN_TOKEN).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{id}: {}", reply.body);
    }
}

async fn group_rules_are_bounded(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let groups = format!("/accounts/{account}/access/groups");
    let many = |n: usize| -> Value { (0..n).map(|_| json!({"everyone": {}})).collect() };

    let most = server
        .post(
            &groups,
            ADMIN_TOKEN,
            json!({"name": "Most", "include": many(500), "exclude": many(500), "require": many(500)}),
        )
        .await;
    assert_eq!(most.status, StatusCode::CREATED, "{}", most.body);
    for list in ["include", "exclude", "require"] {
        let mut body = json!({"name": "Too many", "include": [{"everyone": {}}]});
        body[list] = many(501);
        let reply = server.post(&groups, ADMIN_TOKEN, body).await;
        assert_invalid(&reply, &format!("/{list}"), list);
    }
    for (body, pointer) in [
        (json!({"name": "", "include": [{"everyone": {}}]}), "/name"),
        (
            json!({"name": "x".repeat(351), "include": [{"everyone": {}}]}),
            "/name",
        ),
        (json!({"name": "x", "include": []}), "/include"),
        (
            json!({"name": "x", "include": [{"geo": {"country_code": "Germany"}}]}),
            "/include/0",
        ),
        (
            json!({"name": "x", "include": [{"group": {"id": "x".repeat(129)}}]}),
            "/include/0",
        ),
        (
            json!({"name": "x", "include": [{"okta": {"name": "eng"}}]}),
            "/include/0",
        ),
        (
            json!({"name": "x", "include": [{"everyone": {}}], "is_default": "yes"}),
            "/is_default",
        ),
        (
            json!({"name": "x", "include": [{"everyone": {}}], "colour": "red"}),
            "",
        ),
    ] {
        let reply = server.post(&groups, ADMIN_TOKEN, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.body
        );
        if !pointer.is_empty() {
            assert_invalid(&reply, pointer, &body.to_string());
        }
    }
    // Past serde_json's nesting limit, and past the body limit.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let nested = Server::reply(
        server
            .http
            .post(server.url(&groups))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(format!(r#"{{"name": "x", "include": {deep}}}"#)),
    )
    .await;
    assert_eq!(nested.status, StatusCode::BAD_REQUEST, "{}", nested.body);
    let huge = server
        .post(
            &groups,
            ADMIN_TOKEN,
            json!({"name": "x".repeat(1 << 20), "include": []}),
        )
        .await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
    let listed = server.get(&groups, ADMIN_TOKEN).await;
    assert_eq!(
        listed.body["result_info"]["total_count"], 1,
        "nothing refused was kept"
    );
}

/// Cloudflare files Access groups under "Access: Organizations, Identity
/// Providers, and Groups": Read lists and gets, Write also changes; the
/// applications and policies groups open nothing here.
async fn groups_need_the_organization_groups_permissions(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Home").await;
    let groups = format!("/accounts/{account}/access/groups");
    let id = create(&server, &groups, "Staff", json!([{"everyone": {}}])).await;
    let one = format!("{groups}/{id}");
    let body = json!({"name": "Mine", "include": [{"everyone": {}}]});

    let (_, reader) = server.create_token(&account, &[GROUPS_READ]).await;
    assert_eq!(server.get(&groups, &reader).await.status, StatusCode::OK);
    assert_eq!(server.get(&one, &reader).await.status, StatusCode::OK);
    let write = server.post(&groups, &reader, body.clone()).await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    assert_eq!(write.error_code(), 10000);
    assert_eq!(
        server.put(&one, &reader, body.clone()).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        server.delete(&one, &reader).await.status,
        StatusCode::FORBIDDEN
    );

    let (_, apps) = server.create_token(&account, &[APPS_WRITE]).await;
    assert_eq!(
        server.get(&groups, &apps).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        server.post(&groups, &apps, body.clone()).await.status,
        StatusCode::FORBIDDEN
    );

    let (_, writer) = server.create_token(&account, &[GROUPS_WRITE]).await;
    let created = server.post(&groups, &writer, body.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let mine = format!("{groups}/{}", id_of(&created));
    assert_eq!(
        server.put(&mine, &writer, body).await.status,
        StatusCode::OK
    );
    assert_eq!(server.get(&groups, &writer).await.status, StatusCode::OK);
    assert_eq!(
        server.delete(&mine, &writer).await.status,
        StatusCode::ACCEPTED
    );

    let other = server.create_account("Elsewhere").await;
    let cross = server
        .get(&format!("/accounts/{other}/access/groups"), &writer)
        .await;
    assert_eq!(
        cross.status,
        StatusCode::FORBIDDEN,
        "a token stays in its account"
    );
}

/// A policy naming an Access group admits whoever the group's own rules
/// match, through nesting, and refuses everyone else.
async fn a_policy_naming_an_access_group_admits_its_members_only(db: TestDb) {
    let bed = LoginBed::start(&db, json!([email("placeholder@example.com")]), &[]).await;
    let server = &bed.server;
    let access = format!("/accounts/{}/access", bed.account);
    let groups = format!("{access}/groups");
    let admins = create(server, &groups, "Admins", json!([email("ann@example.com")])).await;
    let staff = server
        .post(
            &groups,
            ADMIN_TOKEN,
            json!({"name": "Staff",
                   "include": [group_rule(&admins), email("carl@example.com")],
                   "exclude": [email("carl@example.com")]}),
        )
        .await;
    assert_eq!(staff.status, StatusCode::CREATED, "{}", staff.body);

    let app = server
        .get(&format!("{access}/apps/{}", bed.app_id), ADMIN_TOKEN)
        .await;
    let policy_id = app.result()["policies"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let policy = server
        .put(
            &format!("{access}/policies/{policy_id}"),
            ADMIN_TOKEN,
            json!({"name": "Allow", "decision": "allow", "include": [group_rule(&id_of(&staff))]}),
        )
        .await;
    assert_eq!(policy.status, StatusCode::OK, "{}", policy.body);

    let member = bed.sign_in("ann@example.com").await;
    assert_eq!(member.status, StatusCode::SEE_OTHER, "{}", member.html);
    assert!(!member.app_token().is_empty());
    for outsider in ["bob@example.com", "carl@example.com"] {
        let refused = bed.sign_in(outsider).await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{outsider}: {}",
            refused.html
        );
    }

    // The group's rules are read at each sign-in.
    let changed = server
        .put(
            &format!("{groups}/{admins}"),
            ADMIN_TOKEN,
            json!({"name": "Admins", "include": [email("bob@example.com")]}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(
        bed.sign_in("bob@example.com").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        bed.sign_in("ann@example.com").await.status,
        StatusCode::FORBIDDEN
    );
}
