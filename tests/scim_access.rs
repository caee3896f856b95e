//! What SCIM users do to sign-ins: group rules, deactivation, and which
//! Access users a provider's SCIM may act on. Sign-ins go through the real
//! one-time-PIN pages, the code read from the server's outbox folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{ADMIN_TOKEN, Server, TestDb};
use crate::scim::{Scim, scim_provider};

crate::on_each_backend!(
    a_deactivated_scim_user_is_in_no_group_at_sign_in,
    another_providers_scim_cannot_take_over_an_access_user,
);

/// A browser without JavaScript: the CSRF cookie and the forms.
struct Visitor {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

/// What a sign-in ended with: the status and, when let in, the token's claims.
struct SignIn {
    status: StatusCode,
    claims: Option<Value>,
}

fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    html.split_once(&marker)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(value, _)| value.replace("&amp;", "&"))
        .unwrap_or_default()
}

fn eml_files(outbox: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(outbox)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// The code of the first message to `address` not among `seen`.
async fn code_for(outbox: &Path, seen: &[PathBuf], address: &str) -> String {
    for _ in 0..200 {
        for path in eml_files(outbox) {
            if seen.contains(&path) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if !text.to_lowercase().contains(&address.to_lowercase()) {
                continue;
            }
            let code = text
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .and_then(|s| s.split_whitespace().next())
                .unwrap_or_default();
            return code.to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no sign-in code reached {address}")
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

impl Visitor {
    fn new(server: &Server) -> Self {
        Visitor {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            base: server.base.clone(),
            cookie: String::new(),
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> (StatusCode, String, String) {
        let response = request
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for set in response.headers().get_all("set-cookie") {
            if let Some(pair) = set.to_str().ok().and_then(|v| v.split(';').next()) {
                self.cookie = pair.to_string();
            }
        }
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (status, location, response.text().await.unwrap_or_default())
    }

    async fn post_form(&mut self, path: &str, body: String) -> (StatusCode, String, String) {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    async fn sign_in(&mut self, outbox: &Path, app_domain: &str, address: &str) -> SignIn {
        let redirect = format!("http://{app_domain}/");
        let login_url = format!(
            "{}/cdn-cgi/access/login/{app_domain}?{}",
            self.base,
            form(&[("redirect_url", &redirect)])
        );
        let (status, _, login) = self.send(self.http.get(login_url)).await;
        assert_eq!(status, StatusCode::OK, "{login}");
        let seen = eml_files(outbox);
        let send_body = form(&[
            ("app", &field(&login, "app")),
            ("redirect_url", &field(&login, "redirect_url")),
            ("email", address),
            ("csrf", &field(&login, "csrf")),
        ]);
        let (status, _, code_page) = self.post_form("/cdn-cgi/access/otp/send", send_body).await;
        assert_eq!(status, StatusCode::OK, "{code_page}");
        let code = code_for(outbox, &seen, address).await;
        let verify_body = form(&[
            ("challenge", &field(&code_page, "challenge")),
            ("code", &code),
            ("csrf", &field(&code_page, "csrf")),
        ]);
        let (status, location, _) = self
            .post_form("/cdn-cgi/access/otp/verify", verify_body)
            .await;
        let claims = location
            .split_once("token=")
            .and_then(|(_, rest)| rest.split('&').next())
            .and_then(|token| token.split('.').nth(1))
            .and_then(|payload| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload)
                    .ok()
            })
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        SignIn { status, claims }
    }
}

/// A server writing codes to a fresh outbox, an account with a PIN
/// provider, and an application at `app.example.com` guarded by `include`.
async fn signin_setup(db: &TestDb, outbox: &Path) -> (Server, String, String) {
    let outbox = outbox.to_string_lossy().to_string();
    let server = Server::start_with(
        db,
        &[
            ("ACCESSD_ADMIN_TOKEN", ADMIN_TOKEN),
            ("ACCESSD_OUTBOX", &outbox),
        ],
    )
    .await;
    let account = server.create_account("Home").await;
    let pin = server
        .post(
            &format!("/accounts/{account}/access/identity_providers"),
            ADMIN_TOKEN,
            json!({"name": "PIN", "type": "onetimepin", "config": {}}),
        )
        .await;
    let pin_id = pin.result()["id"].as_str().unwrap_or_default().to_string();
    (server, account, pin_id)
}

async fn guarded_app(server: &Server, account: &str, pin_id: &str, include: Value) {
    let base = format!("/accounts/{account}/access");
    let policy = server
        .post(
            &format!("{base}/policies"),
            ADMIN_TOKEN,
            json!({"name": "Members", "decision": "allow", "include": include}),
        )
        .await;
    assert_eq!(policy.status, StatusCode::CREATED, "{}", policy.body);
    let app = server
        .post(
            &format!("{base}/apps"),
            ADMIN_TOKEN,
            json!({
                "type": "self_hosted", "name": "Wiki", "domain": "app.example.com",
                "allowed_idps": [pin_id],
                "policies": [{"id": policy.result()["id"], "precedence": 1}]
            }),
        )
        .await;
    assert_eq!(app.status, StatusCode::CREATED, "{}", app.body);
}

fn id_of(reply: &crate::common::Reply) -> String {
    reply.body["id"].as_str().unwrap_or_default().to_string()
}

fn patch(ops: Value) -> Option<Value> {
    Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}))
}

async fn a_deactivated_scim_user_is_in_no_group_at_sign_in(db: TestDb) {
    let outbox = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (server, account, pin_id) = signin_setup(&db, outbox.path()).await;
    let scim: Scim<'_> = scim_provider(&server, &account, "Okta", json!({"enabled": true})).await;
    let user = scim
        .call(
            "POST",
            "/Users",
            Some(json!({"userName": "ann@example.com", "active": true})),
        )
        .await;
    let group = scim
        .call(
            "POST",
            "/Groups",
            Some(json!({"displayName": "Staff", "members": [{"value": id_of(&user)}]})),
        )
        .await;
    assert_eq!(group.status, StatusCode::CREATED, "{}", group.body);
    guarded_app(
        &server,
        &account,
        &pin_id,
        json!([{"group": {"id": id_of(&group)}}]),
    )
    .await;

    let mut visitor = Visitor::new(&server);
    let member = visitor
        .sign_in(outbox.path(), "app.example.com", "ann@example.com")
        .await;
    assert_eq!(member.status, StatusCode::SEE_OTHER, "a member is let in");
    let outsider = Visitor::new(&server)
        .sign_in(outbox.path(), "app.example.com", "bob@example.com")
        .await;
    assert_eq!(outsider.status, StatusCode::FORBIDDEN, "a stranger is not");

    let off = scim
        .call(
            "PATCH",
            &format!("/Users/{}", id_of(&user)),
            patch(json!([{"op": "replace", "path": "active", "value": false}])),
        )
        .await;
    assert_eq!(off.body["active"], false, "{}", off.body);
    let deactivated = Visitor::new(&server)
        .sign_in(outbox.path(), "app.example.com", "ann@example.com")
        .await;
    assert_eq!(
        deactivated.status,
        StatusCode::FORBIDDEN,
        "a deactivated SCIM user is in no group"
    );

    scim.call(
        "PATCH",
        &format!("/Users/{}", id_of(&user)),
        patch(json!([{"op": "replace", "value": {"active": true}}])),
    )
    .await;
    let back = Visitor::new(&server)
        .sign_in(outbox.path(), "app.example.com", "ann@example.com")
        .await;
    assert_eq!(
        back.status,
        StatusCode::SEE_OTHER,
        "reactivated, let in again"
    );
}

async fn another_providers_scim_cannot_take_over_an_access_user(db: TestDb) {
    let outbox = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (server, account, pin_id) = signin_setup(&db, outbox.path()).await;
    guarded_app(
        &server,
        &account,
        &pin_id,
        json!([{"email_domain": {"domain": "example.com"}}]),
    )
    .await;
    let okta = scim_provider(
        &server,
        &account,
        "Okta",
        json!({"enabled": true, "identity_update_behavior": "automatic"}),
    )
    .await;
    let mallory = scim_provider(
        &server,
        &account,
        "Mallory",
        json!({"enabled": true, "identity_update_behavior": "automatic", "user_deprovision": true}),
    )
    .await;

    // Victim signs in by PIN before any provider pushes her: Access user V.
    let victim = Visitor::new(&server)
        .sign_in(outbox.path(), "app.example.com", "victim@example.com")
        .await;
    let victim_sub = victim.claims.as_ref().map(|c| c["sub"].clone());
    assert!(victim_sub.is_some(), "the victim signs in");
    let users = format!("/accounts/{account}/access/users");
    let victim_path = format!(
        "{users}/{}",
        victim_sub
            .as_ref()
            .and_then(Value::as_str)
            .unwrap_or_default()
    );

    // Another provider pushes the victim's address, then moves it to its own.
    let pushed = mallory
        .call(
            "POST",
            "/Users",
            Some(
                json!({"userName": "victim@example.com", "displayName": "Victim",
                        "emails": [{"value": "victim@example.com", "primary": true}]}),
            ),
        )
        .await;
    assert_eq!(pushed.status, StatusCode::CREATED, "{}", pushed.body);
    let moved = mallory
        .call(
            "PATCH",
            &format!("/Users/{}", id_of(&pushed)),
            patch(json!([
                {"op": "replace", "path": "emails[primary eq true].value", "value": "mallory@example.com"},
                {"op": "replace", "path": "displayName", "value": "Mallory"}
            ])),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    let after = server.get(&victim_path, ADMIN_TOKEN).await;
    assert_eq!(after.result()["email"], "victim@example.com", "not moved");
    assert_ne!(after.result()["name"], "Mallory", "not renamed");
    let attacker = Visitor::new(&server)
        .sign_in(outbox.path(), "app.example.com", "mallory@example.com")
        .await;
    assert_eq!(attacker.status, StatusCode::SEE_OTHER);
    assert_ne!(
        attacker.claims.as_ref().map(|c| c["sub"].clone()),
        victim_sub,
        "the attacker's sign-in is not the victim's user"
    );

    // A provider that provisioned someone first holds the address: another
    // provider's SCIM user with it neither renames, moves nor deprovisions them.
    let first = okta
        .call(
            "POST",
            "/Users",
            Some(json!({"userName": "carol@example.com", "displayName": "Carol"})),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let carol = Visitor::new(&server)
        .sign_in(outbox.path(), "app.example.com", "carol@example.com")
        .await;
    let carol_sub = carol.claims.as_ref().map(|c| c["sub"].clone());
    let carol_path = format!(
        "{users}/{}",
        carol_sub
            .as_ref()
            .and_then(Value::as_str)
            .unwrap_or_default()
    );
    let second = mallory
        .call(
            "POST",
            "/Users",
            Some(json!({"userName": "carol@example.com", "displayName": "Carol"})),
        )
        .await;
    for ops in [
        json!([{"op": "replace", "path": "userName", "value": "mallory2@example.com"}]),
        json!([{"op": "replace", "value": {"active": false}}]),
    ] {
        let changed = mallory
            .call("PATCH", &format!("/Users/{}", id_of(&second)), patch(ops))
            .await;
        assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    }
    let carol_now = server.get(&carol_path, ADMIN_TOKEN).await;
    assert_eq!(carol_now.result()["email"], "carol@example.com");
    assert_eq!(
        carol_now.result()["access_seat"],
        true,
        "not deprovisioned by another provider"
    );

    // The provider that provisioned Carol before she first signed in owns her.
    let renamed = okta
        .call(
            "PATCH",
            &format!("/Users/{}", id_of(&first)),
            patch(
                json!([{"op": "replace", "path": "userName", "value": "carol.new@example.com"},
                         {"op": "replace", "path": "displayName", "value": "Carol N."}]),
            ),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    let carol_renamed = server.get(&carol_path, ADMIN_TOKEN).await;
    assert_eq!(carol_renamed.result()["email"], "carol.new@example.com");
    assert_eq!(carol_renamed.result()["name"], "Carol N.");
}
