//! Forward-auth as nginx, Caddy and Traefik ask it, straight against the
//! real server (the proxies themselves run in the SDK suite).

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::common::login::LoginBed;
use crate::common::{ADMIN_TOKEN, TestDb};

crate::on_each_backend!(
    anonymous_requests_are_sent_to_sign_in_in_each_proxy_style,
    a_signed_in_request_passes_with_its_identity_until_revoked,
    addresses_come_from_trusted_proxies_only,
    bypass_and_service_auth_policies_need_no_person,
    a_revoke_through_one_process_is_refused_by_another,
    policy_changes_and_logouts_reach_another_process_within_a_second,
    every_refusal_is_recorded_with_its_reason,
);

struct Asked {
    status: StatusCode,
    headers: HeaderMap,
}

/// Asks forward-auth about `url` the way `style` sends it.
async fn ask(bed: &LoginBed, style: &str, url: &str, extra: &[(&str, &str)]) -> Asked {
    ask_at(&bed.server.base, style, url, extra).await
}

/// The same, of the accessd process at `base`.
async fn ask_at(base: &str, style: &str, url: &str, extra: &[(&str, &str)]) -> Asked {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let (host, uri) = rest.find('/').map_or((rest, "/"), |at| rest.split_at(at));
    // A proxy hands a redirect on to the client; it does not follow it.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut request = client.get(format!("{base}/cdn-cgi/access/forward-auth"));
    request = match style {
        "nginx" => request
            .header("x-original-url", url)
            .header("x-original-method", "GET"),
        _ => request
            .header("x-forwarded-proto", scheme)
            .header("x-forwarded-host", host)
            .header("x-forwarded-uri", uri)
            .header("x-forwarded-method", "GET"),
    };
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
    Asked {
        status: response.status(),
        headers: response.headers().clone(),
    }
}

fn header(asked: &Asked, name: &str) -> String {
    asked
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn anonymous_requests_are_sent_to_sign_in_in_each_proxy_style(db: TestDb) {
    let bed = LoginBed::start(&db, json!([{"everyone": {}}]), &[]).await;
    let url = format!("http://{}/page?x=1", bed.host);
    let login = format!(
        "{}/cdn-cgi/access/login/{}?redirect_url=",
        bed.server.base, bed.host
    );

    let nginx = ask(&bed, "nginx", &url, &[("accept", "text/html")]).await;
    assert_eq!(
        nginx.status,
        StatusCode::UNAUTHORIZED,
        "nginx never gets a 3xx"
    );
    assert!(
        header(&nginx, "location").starts_with(&login),
        "{}",
        header(&nginx, "location")
    );
    assert!(header(&nginx, "location").contains("page%3Fx%3D1"));

    let browser = ask(&bed, "caddy", &url, &[("accept", "text/html,*/*")]).await;
    assert_eq!(browser.status, StatusCode::FOUND);
    assert!(header(&browser, "location").starts_with(&login));
    let script = ask(&bed, "caddy", &url, &[("accept", "application/json")]).await;
    assert_eq!(script.status, StatusCode::UNAUTHORIZED);

    // accessd's own pages on the protected host, and hosts nothing protects, pass.
    let own = format!("http://{}/cdn-cgi/access/authorized?token=x", bed.host);
    assert_eq!(ask(&bed, "nginx", &own, &[]).await.status, StatusCode::OK);
    let free = ask(&bed, "nginx", "http://unprotected.example.com/", &[]).await;
    assert_eq!(free.status, StatusCode::OK);
    assert_eq!(header(&free, "cf-access-authenticated-user-email"), "");

    // A path that resolves into a protected one is protected, however spelt.
    let access = format!("/accounts/{}/access", bed.account);
    let listed = bed
        .server
        .get(&format!("{access}/policies"), ADMIN_TOKEN)
        .await;
    let admin_app = bed
        .server
        .post(
            &format!("{access}/apps"),
            ADMIN_TOKEN,
            json!({"type": "self_hosted", "name": "Admin", "domain": "paths.example.com/admin",
                   "policies": [listed.result()[0]["id"]]}),
        )
        .await;
    assert!(admin_app.status.is_success(), "{}", admin_app.body);
    for sneaky in [
        "http://paths.example.com/%61dmin",
        "http://paths.example.com//admin",
        "http://PATHS.example.com.:80/admin",
    ] {
        let asked = ask(&bed, "nginx", sneaky, &[]).await;
        assert_eq!(asked.status, StatusCode::UNAUTHORIZED, "{sneaky}");
    }
    // Paths an upstream may resolve otherwise than accessd are refused, not
    // let by: dot segments, backslashes, encoded dots and slashes.
    for ambiguous in [
        "http://paths.example.com/public/../admin/users",
        "http://paths.example.com/public/%2e%2e/admin",
        "http://paths.example.com/api/1\\..\\..\\cdn-cgi\\access\\x",
        "http://paths.example.com/public%2f..%2fadmin",
    ] {
        let asked = ask(&bed, "nginx", ambiguous, &[]).await;
        assert_eq!(asked.status, StatusCode::BAD_REQUEST, "{ambiguous}");
    }
    // A protected host asked for under another port is refused, not let by:
    // proxies route by hostname whatever the port.
    for other_port in [
        "http://paths.example.com:1/admin",
        "http://paths.example.com:8080/x",
    ] {
        let asked = ask(&bed, "nginx", other_port, &[]).await;
        assert_eq!(asked.status, StatusCode::FORBIDDEN, "{other_port}");
    }
    let bare_app = ask(&bed, "caddy", "http://localhost:1/", &[]).await;
    assert_eq!(bare_app.status, StatusCode::FORBIDDEN);
    let beside = ask(&bed, "nginx", "http://paths.example.com/administrator", &[]).await;
    assert_eq!(
        beside.status,
        StatusCode::OK,
        "a sibling path is not the application's"
    );

    let nameless = bed
        .server
        .http
        .get(format!("{}/cdn-cgi/access/forward-auth", bed.server.base))
        .send()
        .await
        .map(|r| r.status())
        .ok();
    assert_eq!(nameless, Some(StatusCode::BAD_REQUEST));
}

async fn a_signed_in_request_passes_with_its_identity_until_revoked(db: TestDb) {
    let bed = LoginBed::start(
        &db,
        json!([{"email_domain": {"domain": "example.com"}}]),
        &[],
    )
    .await;
    let signed_in = bed.sign_in("walker@example.com").await;
    let token = signed_in.app_token();
    let url = format!("http://{}/", bed.host);
    let cookie = format!("CF_Authorization={token}");

    for style in ["nginx", "caddy"] {
        let passed = ask(&bed, style, &url, &[("cookie", &cookie)]).await;
        assert_eq!(passed.status, StatusCode::OK, "{style}");
        assert_eq!(header(&passed, "cf-access-jwt-assertion"), token);
        assert_eq!(
            header(&passed, "cf-access-authenticated-user-email"),
            "walker@example.com"
        );
    }
    let by_header = ask(&bed, "nginx", &url, &[("cf-access-token", &token)]).await;
    assert_eq!(by_header.status, StatusCode::OK);
    // Another application's host does not take this token.
    let forged = ask(
        &bed,
        "nginx",
        &url,
        &[("cookie", "CF_Authorization=forged.token.here")],
    )
    .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);

    // A policy change applies at the next request: a refusal, recorded.
    let policies = format!("/accounts/{}/access/policies", bed.account);
    let listed = bed.server.get(&policies, ADMIN_TOKEN).await;
    let policy = listed.result()[0].clone();
    let narrowed = bed
        .server
        .put(
            &format!("{policies}/{}", policy["id"].as_str().unwrap_or_default()),
            ADMIN_TOKEN,
            json!({"name": policy["name"], "decision": "allow",
                   "include": [{"email": {"email": "someone.else@example.com"}}]}),
        )
        .await;
    assert_eq!(narrowed.status, StatusCode::OK, "{}", narrowed.body);
    for _ in 0..5 {
        let refused = ask(&bed, "nginx", &url, &[("cookie", &cookie)]).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
    }
    let users = bed
        .server
        .get(
            &format!("/accounts/{}/access/users", bed.account),
            ADMIN_TOKEN,
        )
        .await;
    let user_id = users.result()[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let failed = bed
        .server
        .get(
            &format!(
                "/accounts/{}/access/users/{user_id}/failed_logins",
                bed.account
            ),
            ADMIN_TOKEN,
        )
        .await;
    let reasons: Vec<Value> = failed
        .result()
        .as_array()
        .map(|all| {
            all.iter()
                .map(|f| f["metadata"]["reason"].clone())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        reasons.contains(&json!("no_policy_matched")),
        "{}",
        failed.body
    );

    // Revoking the user ends the token at once.
    bed.server
        .put(
            &format!("{policies}/{}", policy["id"].as_str().unwrap_or_default()),
            ADMIN_TOKEN,
            json!({"name": policy["name"], "decision": "allow",
                   "include": [{"email_domain": {"domain": "example.com"}}]}),
        )
        .await;
    assert_eq!(
        ask(&bed, "nginx", &url, &[("cookie", &cookie)])
            .await
            .status,
        StatusCode::OK
    );
    let revoked = bed
        .server
        .post(
            &format!("/accounts/{}/access/organizations/revoke_user", bed.account),
            ADMIN_TOKEN,
            json!({"email": "walker@example.com"}),
        )
        .await;
    assert_eq!(revoked.result(), &json!(true));
    let after = ask(&bed, "nginx", &url, &[("cookie", &cookie)]).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
}

async fn addresses_come_from_trusted_proxies_only(db: TestDb) {
    let include = json!([{"ip": {"ip": "203.0.113.0/24"}}]);
    let policy = json!({"name": "Office", "decision": "bypass", "include": include});
    let trusting = LoginBed::start_with_policy(
        &db,
        policy.clone(),
        &[("ACCESSD_TRUSTED_PROXY", "127.0.0.1/32,10.0.0.0/8")],
    )
    .await;
    let url = format!("http://{}/", trusting.host);
    // The office client behind the proxy chain passes; spoofing a leftmost
    // entry does not help a client outside it.
    let office = [("x-forwarded-for", "203.0.113.9, 10.1.1.1")];
    assert_eq!(
        ask(&trusting, "nginx", &url, &office).await.status,
        StatusCode::OK
    );
    let spoofed = [("x-forwarded-for", "203.0.113.9, 198.51.100.7")];
    assert_eq!(
        ask(&trusting, "nginx", &url, &spoofed).await.status,
        StatusCode::UNAUTHORIZED
    );
    drop(trusting);

    let other_db = match &db {
        TestDb::Sqlite { .. } => TestDb::sqlite(),
        TestDb::Postgres { .. } => TestDb::postgres().await.unwrap_or_else(TestDb::sqlite),
    };
    let untrusting = LoginBed::start_with_policy(&other_db, policy, &[]).await;
    let url = format!("http://{}/", untrusting.host);
    let claimed = [("x-forwarded-for", "203.0.113.9")];
    assert_eq!(
        ask(&untrusting, "nginx", &url, &claimed).await.status,
        StatusCode::UNAUTHORIZED,
        "an untrusted peer's X-Forwarded-For is ignored"
    );
}

async fn bypass_and_service_auth_policies_need_no_person(db: TestDb) {
    let bed = LoginBed::start(
        &db,
        json!([{"email_domain": {"domain": "example.com"}}]),
        &[],
    )
    .await;
    let tokens = format!("/accounts/{}/access/service_tokens", bed.account);
    let created = bed
        .server
        .post(
            &tokens,
            ADMIN_TOKEN,
            json!({"name": "ci", "duration": "8760h"}),
        )
        .await;
    assert!(created.status.is_success(), "{}", created.body);
    let id = created.result()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let client_id = created.result()["client_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let secret = created.result()["client_secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let access = format!("/accounts/{}/access", bed.account);
    let machines = bed
        .server
        .post(
            &format!("{access}/policies"),
            ADMIN_TOKEN,
            json!({"name": "CI", "decision": "non_identity",
                   "include": [{"service_token": {"token_id": id}}]}),
        )
        .await;
    assert!(machines.status.is_success(), "{}", machines.body);
    let apps = bed.server.get(&format!("{access}/apps"), ADMIN_TOKEN).await;
    let app = apps.result()[0].clone();
    let mut policy_ids: Vec<Value> = app["policies"]
        .as_array()
        .map(|p| p.iter().map(|p| p["id"].clone()).collect())
        .unwrap_or_default();
    policy_ids.push(machines.result()["id"].clone());
    let updated = bed
        .server
        .put(
            &format!("{access}/apps/{}", app["id"].as_str().unwrap_or_default()),
            ADMIN_TOKEN,
            json!({"type": "self_hosted", "name": app["name"], "domain": app["domain"],
                   "policies": policy_ids}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);

    let url = format!("http://{}/api", bed.host);
    let machine = [
        ("cf-access-client-id", client_id.as_str()),
        ("cf-access-client-secret", secret.as_str()),
    ];
    let passed = ask(&bed, "caddy", &url, &machine).await;
    assert_eq!(passed.status, StatusCode::OK);
    assert_eq!(header(&passed, "cf-access-authenticated-user-email"), "");
    // The upstream gets a token naming the machine, never a person.
    let jwt = header(&passed, "cf-access-jwt-assertion");
    let claims = jwt
        .split('.')
        .nth(1)
        .and_then(|part| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .unwrap_or_default();
    assert_eq!(claims["common_name"], json!(client_id));
    assert_eq!(claims["sub"], json!(""));
    let wrong = [
        ("cf-access-client-id", client_id.as_str()),
        ("cf-access-client-secret", "cfast_wrong"),
    ];
    assert_eq!(
        ask(&bed, "caddy", &url, &wrong).await.status,
        StatusCode::UNAUTHORIZED
    );
    let deleted = bed
        .server
        .delete(&format!("{tokens}/{id}"), ADMIN_TOKEN)
        .await;
    assert!(deleted.status.is_success(), "{}", deleted.body);
    assert_eq!(
        ask(&bed, "caddy", &url, &machine).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// Two processes on one database: a revoke through one is refused by the
/// other at once (each decision reads the session state it shares).
async fn a_revoke_through_one_process_is_refused_by_another(db: TestDb) {
    let bed = LoginBed::start(&db, json!([{"everyone": {}}]), &[]).await;
    let other = second_process(&bed, &db).await;
    let token = bed.sign_in("shared@example.com").await.app_token();
    let url = format!("http://{}/", bed.host);
    let cookie = format!("CF_Authorization={token}");
    let through_b = ask_at(&other.base, "nginx", &url, &[("cookie", &cookie)]).await;
    assert_eq!(through_b.status, StatusCode::OK);

    let revoked = bed
        .server
        .post(
            &format!("/accounts/{}/access/organizations/revoke_user", bed.account),
            ADMIN_TOKEN,
            json!({"email": "shared@example.com"}),
        )
        .await;
    assert_eq!(revoked.result(), &json!(true));
    answers_within_a_second(&other.base, &url, &cookie, StatusCode::UNAUTHORIZED).await;
}

/// Another accessd process on the same database.
async fn second_process(bed: &LoginBed, db: &TestDb) -> crate::common::Server {
    crate::common::Server::start_with(
        db,
        &[
            ("ACCESSD_ADMIN_TOKEN", ADMIN_TOKEN),
            ("ACCESSD_PUBLIC_URL", bed.server.base.as_str()),
        ],
    )
    .await
}

/// Asks the process at `base` until it answers `expected`, for at most a second.
async fn answers_within_a_second(base: &str, url: &str, cookie: &str, expected: StatusCode) {
    let started = std::time::Instant::now();
    loop {
        let status = ask_at(base, "nginx", url, &[("cookie", cookie)])
            .await
            .status;
        if status == expected {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "still {status}, not {expected}, a second after the change"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Each process holds what its decisions read; a change made through one
/// reaches the other's decisions within a second, in both directions.
async fn policy_changes_and_logouts_reach_another_process_within_a_second(db: TestDb) {
    let bed = LoginBed::start(&db, json!([{"everyone": {}}]), &[]).await;
    let other = second_process(&bed, &db).await;
    let token = bed.sign_in("held@example.com").await.app_token();
    let url = format!("http://{}/", bed.host);
    let cookie = format!("CF_Authorization={token}");
    // Both processes have decided once, so both hold the inputs.
    for base in [&bed.server.base, &other.base] {
        let asked = ask_at(base, "nginx", &url, &[("cookie", &cookie)]).await;
        assert_eq!(asked.status, StatusCode::OK);
    }

    let policies = format!("/accounts/{}/access/policies", bed.account);
    let policy = bed.server.get(&policies, ADMIN_TOKEN).await.result()[0].clone();
    let policy_path = format!("{policies}/{}", policy["id"].as_str().unwrap_or_default());
    let set_rule =
        |rule: Value| json!({"name": policy["name"], "decision": "allow", "include": [rule]});
    let narrowed = bed
        .server
        .put(
            &policy_path,
            ADMIN_TOKEN,
            set_rule(json!({"email": {"email": "x@example.com"}})),
        )
        .await;
    assert_eq!(narrowed.status, StatusCode::OK, "{}", narrowed.body);
    // The writing process decides on its write at once.
    let here = ask_at(&bed.server.base, "nginx", &url, &[("cookie", &cookie)]).await;
    assert_eq!(here.status, StatusCode::FORBIDDEN);
    answers_within_a_second(&other.base, &url, &cookie, StatusCode::FORBIDDEN).await;

    // Widened again through the other process.
    let widened = other
        .put(&policy_path, ADMIN_TOKEN, set_rule(json!({"everyone": {}})))
        .await;
    assert_eq!(widened.status, StatusCode::OK, "{}", widened.body);
    answers_within_a_second(&bed.server.base, &url, &cookie, StatusCode::OK).await;

    // Signing out on one process ends the session on the other.
    let client = reqwest::Client::new();
    let logout = client
        .get(format!("{}/cdn-cgi/access/logout", other.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(logout.status(), StatusCode::OK);
    let there = ask_at(&other.base, "nginx", &url, &[("cookie", &cookie)]).await;
    assert_eq!(there.status, StatusCode::UNAUTHORIZED);
    answers_within_a_second(&bed.server.base, &url, &cookie, StatusCode::UNAUTHORIZED).await;
}

/// A refusal at sign-in by any rule is a failed login naming why.
async fn every_refusal_is_recorded_with_its_reason(db: TestDb) {
    let policy = json!({"name": "Staff", "decision": "allow",
        "include": [{"email_domain": {"domain": "example.com"}}],
        "exclude": [{"email": {"email": "left@example.com"}}],
        "require": [{"ip": {"ip": "127.0.0.0/8"}}]});
    let bed = LoginBed::start_with_policy(&db, policy, &[]).await;
    // Outside the required network: a second app whose policy requires another one.
    let access = format!("/accounts/{}/access", bed.account);
    let elsewhere = bed
        .server
        .post(
            &format!("{access}/policies"),
            ADMIN_TOKEN,
            json!({"name": "Branch", "decision": "allow",
                   "include": [{"email_domain": {"domain": "example.com"}}],
                   "require": [{"ip": {"ip": "10.0.0.0/8"}}]}),
        )
        .await;
    let port = bed.host.rsplit(':').next().unwrap_or_default();
    let branch_host = format!("localhost:{port}/branch");
    let created = bed
        .server
        .post(
            &format!("{access}/apps"),
            ADMIN_TOKEN,
            json!({"type": "self_hosted", "name": "Branch", "domain": branch_host,
                   "policies": [elsewhere.result()["id"]]}),
        )
        .await;
    assert!(created.status.is_success(), "{}", created.body);

    for (email, expected) in [
        ("left@example.com", "rule_excluded"),
        ("outsider@example.org", "no_policy_matched"),
    ] {
        let refused = bed.sign_in(email).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{email}");
        assert_eq!(last_reason(&bed, email).await, expected, "{email}");
    }
    let mut visitor = bed.visitor();
    let login = visitor.open_login(&branch_host).await;
    let code_page = visitor.send_code(&login, "member@example.com").await;
    let refused = visitor.verify(&code_page, &bed.newest_code()).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.html);
    assert_eq!(
        last_reason(&bed, "member@example.com").await,
        "rule_required"
    );
}

async fn last_reason(bed: &LoginBed, email: &str) -> String {
    let users = format!("/accounts/{}/access/users", bed.account);
    let listed = bed
        .server
        .get(&format!("{users}?email={email}"), ADMIN_TOKEN)
        .await;
    let user_id = listed.result()[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let failed = bed
        .server
        .get(&format!("{users}/{user_id}/failed_logins"), ADMIN_TOKEN)
        .await;
    failed.result()[0]["metadata"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
