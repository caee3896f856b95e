//! The organization and its global session: one sign-in opens every
//! application its policies admit, until the session ends.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::login::{Answer, LoginBed, Visitor};
use crate::common::{ADMIN_TOKEN, TestDb};

crate::on_each_backend!(
    a_second_application_opens_without_a_new_code,
    an_application_limited_to_other_providers_asks_again,
    the_organization_is_created_read_and_merged,
    sign_in_lives_on_the_team_domain_which_issues_the_tokens,
    the_home_page_says_what_it_is_and_who_is_signed_in,
);

async fn add_app(bed: &LoginBed, name: &str, domain: &str, include: Value) -> String {
    let policy = json!({"name": name, "decision": "allow", "include": include});
    let app = bed
        .server
        .protect(&bed.account, domain, policy, json!({"name": name}))
        .await;
    app["aud"].as_str().unwrap_or_default().to_string()
}

/// The host the sign-in handed a token to, and that token.
fn handed_to(answer: &Answer) -> (String, String) {
    let location = answer
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let host = location
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or_default()
        .to_string();
    (host, answer.app_token())
}

async fn identity_on(bed: &LoginBed, host: &str, token: &str) -> (StatusCode, Value) {
    let reply = bed
        .server
        .http
        .get(format!("{}/cdn-cgi/access/get-identity", bed.server.base))
        .header("host", host)
        .header("cf-access-jwt-assertion", token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = reply.status();
    (status, reply.json().await.unwrap_or_default())
}

async fn a_second_application_opens_without_a_new_code(db: TestDb) {
    let bed = LoginBed::start(&db, json!([{"everyone": {}}]), &[]).await;
    add_app(
        &bed,
        "Second",
        "second.example.com",
        json!([{"everyone": {}}]),
    )
    .await;
    add_app(
        &bed,
        "Elsewhere",
        "elsewhere.example.com",
        json!([{"email": {"email": "someone.else@example.com"}}]),
    )
    .await;

    let mut visitor = bed.visitor();
    let code_page = bed.ask_code(&mut visitor, "roamer@example.com").await;
    let first = visitor.verify(&code_page, &bed.newest_code()).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.html);
    let mailed = bed.messages().len();

    // The second application: straight on, no code mailed.
    let second = visitor.open_login("second.example.com").await;
    assert_eq!(second.status, StatusCode::SEE_OTHER, "{}", second.html);
    assert_eq!(bed.messages().len(), mailed, "no new code");
    let (host, token) = handed_to(&second);
    assert_eq!(host, "second.example.com");
    let (status, identity) = identity_on(&bed, &host, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(identity["email"], json!("roamer@example.com"));
    // A global token never opens an application by itself.
    let global = visitor
        .cookie_header()
        .split("; ")
        .find_map(|pair| pair.strip_prefix("CF_Authorization="))
        .unwrap_or_default()
        .to_string();
    assert!(
        !global.is_empty(),
        "the sign-in host holds the global token"
    );
    let (status, _) = identity_on(&bed, "second.example.com", &global).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // One session, both applications in it.
    let users = format!("/accounts/{}/access/users", bed.account);
    let listed = bed.server.get(&users, ADMIN_TOKEN).await;
    let user_id = listed.result()[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let sessions = bed
        .server
        .get(&format!("{users}/{user_id}/active_sessions"), ADMIN_TOKEN)
        .await;
    let sessions = sessions.result().as_array().cloned().unwrap_or_default();
    assert_eq!(sessions.len(), 1);
    let apps = sessions[0]["metadata"]["apps"].as_object().map(|a| a.len());
    assert_eq!(apps, Some(2), "{sessions:?}");

    // An application whose policies refuse the identity refuses it here too.
    let refused = visitor.open_login("elsewhere.example.com").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.html);

    // Revoking the user ends the global session: the next application asks for a code.
    let revoked = bed
        .server
        .post(
            &format!("/accounts/{}/access/organizations/revoke_user", bed.account),
            ADMIN_TOKEN,
            json!({"email": "roamer@example.com"}),
        )
        .await;
    assert_eq!(revoked.result(), &json!(true), "{}", revoked.body);
    let after = visitor.open_login("second.example.com").await;
    assert_eq!(after.status, StatusCode::OK, "the form again");
    let (status, _) = identity_on(&bed, &host, &token).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the second app's token ended with it"
    );

    // Signing out ends it as well.
    let code_page = bed.ask_code(&mut visitor, "roamer@example.com").await;
    let again = visitor.verify(&code_page, &bed.newest_code()).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.html);
    let logout = visitor
        .send(
            visitor
                .form("/cdn-cgi/access/logout", &[])
                .header("cookie", visitor.cookie_header()),
        )
        .await;
    assert_eq!(logout.status, StatusCode::OK);
    let after_logout = visitor.open_login("second.example.com").await;
    assert_eq!(after_logout.status, StatusCode::OK);
}

async fn the_organization_is_created_read_and_merged(db: TestDb) {
    let bed = LoginBed::start(&db, json!([{"everyone": {}}]), &[]).await;
    let path = format!("/accounts/{}/access/organizations", bed.account);
    let missing = bed.server.get(&path, ADMIN_TOKEN).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), 9999);

    let bad = bed
        .server
        .post(
            &path,
            ADMIN_TOKEN,
            json!({"auth_domain": "team.example.com", "name": "Team", "session_duration": "5m"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    let created = bed
        .server
        .post(
            &path,
            ADMIN_TOKEN,
            json!({"auth_domain": "Team.Example.com", "name": "Team", "session_duration": "30m",
                   "login_design": {"background_color": "#fff"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.result()["auth_domain"], json!("team.example.com"));
    let twice = bed
        .server
        .post(
            &path,
            ADMIN_TOKEN,
            json!({"auth_domain": "other.example.com", "name": "x"}),
        )
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);

    // An update sends only what changes; the rest stays.
    let updated = bed
        .server
        .put(
            &path,
            ADMIN_TOKEN,
            json!({"name": "Renamed", "auto_redirect_to_identity": true}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    let read = bed.server.get(&path, ADMIN_TOKEN).await;
    for (field, value) in [
        ("name", json!("Renamed")),
        ("session_duration", json!("30m")),
        ("auto_redirect_to_identity", json!(true)),
        ("login_design", json!({"background_color": "#fff"})),
        ("trusted_accounts", json!([])),
    ] {
        assert_eq!(read.result()[field], value, "{field}: {}", read.body);
    }
    let unknown = bed
        .server
        .put(&path, ADMIN_TOKEN, json!({"colour": "red"}))
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);

    // The team domain serves its account's keys.
    let certs = bed
        .server
        .http
        .get(format!("{}/cdn-cgi/access/certs", bed.server.base))
        .header("host", "team.example.com")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let certs: Value = certs.json().await.unwrap_or_default();
    assert_eq!(certs["keys"].as_array().map(Vec::len), Some(1), "{certs}");
}

/// A session proven by the PIN does not open an application that allows
/// only another identity provider: its sign-in page is shown instead.
async fn an_application_limited_to_other_providers_asks_again(db: TestDb) {
    let bed = LoginBed::start(&db, json!([{"everyone": {}}]), &[]).await;
    let access = format!("/accounts/{}/access", bed.account);
    let sso = bed
        .server
        .post(
            &format!("{access}/identity_providers"),
            ADMIN_TOKEN,
            json!({"name": "SSO", "type": "oidc", "config": {
                "client_id": "accessd", "client_secret": "s3cret",
                "auth_url": "https://idp.example.com/auth", "token_url": "https://idp.example.com/token",
                "certs_url": "https://idp.example.com/jwks"}}),
        )
        .await;
    assert!(sso.status.is_success(), "{}", sso.body);
    let policies = bed
        .server
        .get(&format!("{access}/policies"), ADMIN_TOKEN)
        .await;
    let payroll = bed
        .server
        .post(
            &format!("{access}/apps"),
            ADMIN_TOKEN,
            json!({"type": "self_hosted", "name": "Payroll", "domain": "payroll.example.com",
                   "allowed_idps": [sso.result()["id"]],
                   "policies": [policies.result()[0]["id"]]}),
        )
        .await;
    assert!(payroll.status.is_success(), "{}", payroll.body);

    let mut visitor = bed.visitor();
    let code_page = bed.ask_code(&mut visitor, "pin.user@example.com").await;
    let signed_in = visitor.verify(&code_page, &bed.newest_code()).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.html
    );
    let payroll_page = visitor.open_login("payroll.example.com").await;
    assert_eq!(
        payroll_page.status,
        StatusCode::OK,
        "the provider's sign-in, not a hand-over"
    );
}

/// The `iss` of a token, read without verifying it.
fn issuer_of(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap_or_default();
    let claims: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    claims["iss"].as_str().unwrap_or_default().to_string()
}

/// With an `auth_domain`, forward-auth sends visitors to sign in there, the
/// sign-in pages work there (forms included), and the tokens it hands out
/// name it as their issuer and pass the gate.
async fn sign_in_lives_on_the_team_domain_which_issues_the_tokens(db: TestDb) {
    let bed = LoginBed::start(&db, json!([{"everyone": {}}]), &[]).await;
    let port = bed.server.base.rsplit(':').next().unwrap_or_default();
    let team_host = format!("team.example.com:{port}");
    let created = bed
        .server
        .post(
            &format!("/accounts/{}/access/organizations", bed.account),
            ADMIN_TOKEN,
            json!({"auth_domain": team_host, "name": "Team"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let ask = |cookie: String| {
        client
            .get(format!("{}/cdn-cgi/access/forward-auth", bed.server.base))
            .header("x-original-url", format!("http://{}/page", bed.host))
            .header("cookie", cookie)
            .send()
    };
    let anonymous = ask(String::new()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let location = anonymous
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let login = format!("http://{team_host}/cdn-cgi/access/login/{}?", bed.host);
    assert!(location.starts_with(&login), "{location}");

    let mut visitor = Visitor::at_team_domain(&bed.server.base, &team_host);
    let page = visitor.open_login(&bed.host).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    // A form sent from the team domain's own page is taken; one from elsewhere is not.
    let foreign = visitor
        .send_code_request(&page, "member@example.com")
        .header("origin", "http://elsewhere.example.com");
    assert_eq!(visitor.send(foreign).await.status, StatusCode::FORBIDDEN);
    let own = visitor
        .send_code_request(&page, "member@example.com")
        .header("origin", format!("http://{team_host}"));
    let code_page = visitor.send(own).await;
    assert_eq!(code_page.status, StatusCode::OK, "{}", code_page.html);
    let done = visitor.verify(&code_page, &bed.newest_code()).await;
    let token = done.app_token();
    assert_eq!(issuer_of(&token), format!("http://{team_host}"));
    assert!(
        visitor.cookie_header().contains("CF_Authorization="),
        "the global session cookie is set on the team domain"
    );

    let passed = ask(format!("CF_Authorization={token}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(passed.status(), StatusCode::OK);
}

/// `/` on accessd's address says what it is; on a protected host that
/// reaches accessd directly it says whether, and as whom, one is signed in.
async fn the_home_page_says_what_it_is_and_who_is_signed_in(db: TestDb) {
    let bed = LoginBed::start(&db, json!([{"everyone": {}}]), &[]).await;
    let page = |host: String, cookie: String| {
        let client = reqwest::Client::new();
        let url = format!("{}/", bed.server.base);
        async move {
            let response = client
                .get(url)
                .header("host", host)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            (response.status(), response.text().await.unwrap_or_default())
        }
    };
    let own_host = bed.server.base.trim_start_matches("http://").to_string();
    let (status, html) = page(own_host, String::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("accessd is running") && html.contains("/client/v4"),
        "{html}"
    );

    let (status, html) = page(bed.host.clone(), String::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("not signed in") && html.contains("Sign in"),
        "{html}"
    );

    let token = bed.sign_in("home@example.com").await.app_token();
    let (_, html) = page(bed.host.clone(), format!("CF_Authorization={token}")).await;
    assert!(
        html.contains("You are signed in") && html.contains("home@example.com"),
        "{html}"
    );
}
