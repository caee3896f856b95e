//! Sign-in at a generic OpenID provider, up to the provider: the login page
//! offers it, the start page sends the browser there with state, nonce and
//! PKCE, and the callback refuses whatever is not the answer to that very
//! start in that very browser. (The whole round trip against a real
//! provider is `tests/sdk/node/oidc-login.test.mjs`.)

use reqwest::StatusCode;
use serde_json::json;

use crate::common::login::{Answer, LoginBed, Visitor, answer};
use crate::common::{ADMIN_TOKEN, TestDb};

crate::on_each_backend!(
    the_login_page_offers_allowed_providers,
    start_sends_the_browser_to_the_provider,
    callbacks_are_single_use_and_bound_to_the_browser,
    garbage_callbacks_are_refused,
    hostile_providers_cannot_hang_or_flood_the_callback,
    a_provider_error_uses_the_sign_in_up,
);

/// A provider whose token endpoint does not answer: sign-ins get as far as
/// the code exchange and fail there.
async fn add_oidc(bed: &LoginBed, name: &str) -> String {
    add_oidc_at(bed, name, "http://127.0.0.1:9/token").await
}

async fn add_oidc_at(bed: &LoginBed, name: &str, token_url: &str) -> String {
    let reply = bed
        .server
        .post(
            &format!("/accounts/{}/access/identity_providers", bed.account),
            ADMIN_TOKEN,
            json!({"name": name, "type": "oidc", "config": {
                "client_id": "accessd-client", "client_secret": "client-s3cret",
                "auth_url": "https://idp.example.com/authorize?tenant=1",
                "token_url": token_url, "certs_url": "http://127.0.0.1:9/jwks",
                "scopes": ["email"]}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.result()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn start_link(login: &Answer) -> Option<String> {
    let at = login.html.find("/cdn-cgi/access/oidc/start?")?;
    let end = login.html[at..].find('"')?;
    Some(login.html[at..at + end].replace("&amp;", "&"))
}

async fn start(bed: &LoginBed, visitor: &mut Visitor) -> (Answer, Vec<(String, String)>) {
    let login = visitor.open_login(&bed.host).await;
    let link = start_link(&login).unwrap_or_else(|| panic!("no provider link: {}", login.html));
    follow_start(visitor, &link).await
}

async fn follow_start(visitor: &mut Visitor, link: &str) -> (Answer, Vec<(String, String)>) {
    let request = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"))
        .get(visitor.url(link))
        .header("cookie", visitor.cookie_header());
    let started = visitor.send(request).await;
    let location = started
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let query = location.split_once('?').map_or("", |(_, q)| q);
    let params = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    (started, params)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> &'a str {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

async fn callback(visitor: &mut Visitor, query: &str) -> Answer {
    let request = reqwest::Client::new()
        .get(visitor.url(&format!("/cdn-cgi/access/callback?{query}")))
        .header("cookie", visitor.cookie_header());
    visitor.send(request).await
}

async fn the_login_page_offers_allowed_providers(db: TestDb) {
    let bed = LoginBed::start(&db, json!([{"everyone": {}}]), &[]).await;
    let mut visitor = bed.visitor();
    let before = visitor.open_login(&bed.host).await;
    assert!(start_link(&before).is_none(), "no OpenID provider yet");
    assert!(before.html.contains("otp/send"));

    let idp_id = add_oidc(&bed, "Corp <SSO>").await;
    let login = visitor.open_login(&bed.host).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(
        login.html.contains("Sign in with Corp &lt;SSO&gt;"),
        "{}",
        login.html
    );
    let link = start_link(&login).unwrap_or_default();
    assert!(link.contains(&format!("idp={idp_id}")), "{link}");
    assert!(login.html.contains("otp/send"), "the PIN form stays");

    // An application that allows only the PIN does not offer the provider.
    let access = format!("/accounts/{}/access", bed.account);
    let idps = bed
        .server
        .get(&format!("{access}/identity_providers"), ADMIN_TOKEN)
        .await;
    let pin_id = idps.body["result"]
        .as_array()
        .and_then(|all| all.iter().find(|i| i["type"] == "onetimepin"))
        .map(|i| i["id"].clone())
        .unwrap_or_default();
    let app_path = format!("{access}/apps/{}", bed.app_id);
    let mut app = bed
        .server
        .get(&app_path, ADMIN_TOKEN)
        .await
        .result()
        .clone();
    app["allowed_idps"] = json!([pin_id]);
    let put = bed.server.put(&app_path, ADMIN_TOKEN, app).await;
    assert!(put.status.is_success(), "{}", put.body);
    let pin_only = visitor.open_login(&bed.host).await;
    assert!(start_link(&pin_only).is_none(), "{}", pin_only.html);
    let sneaked = answer(reqwest::Client::new().get(visitor.url(&format!(
        "/cdn-cgi/access/oidc/start?idp={idp_id}&app={}",
        bed.host
    ))))
    .await;
    assert_eq!(
        sneaked.status,
        StatusCode::NOT_FOUND,
        "not allowed by the app"
    );
}

async fn start_sends_the_browser_to_the_provider(db: TestDb) {
    let bed = LoginBed::start(&db, json!([{"everyone": {}}]), &[]).await;
    add_oidc(&bed, "Corp").await;
    let mut visitor = bed.visitor();
    let (started, params) = start(&bed, &mut visitor).await;
    assert_eq!(started.status, StatusCode::FOUND);
    let location = started
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        location.starts_with("https://idp.example.com/authorize?tenant=1&"),
        "{location}"
    );
    assert_eq!(param(&params, "response_type"), "code");
    assert_eq!(param(&params, "client_id"), "accessd-client");
    assert_eq!(param(&params, "scope"), "openid email");
    assert_eq!(param(&params, "code_challenge_method"), "S256");
    assert_eq!(param(&params, "code_challenge").len(), 43);
    assert_eq!(param(&params, "state").len(), 43);
    assert_eq!(param(&params, "nonce").len(), 43);
    assert!(
        param(&params, "redirect_uri").ends_with("/cdn-cgi/access/callback"),
        "{params:?}"
    );
    assert!(!location.contains("client-s3cret"));
    let (_, again) = start(&bed, &mut visitor).await;
    assert_ne!(param(&again, "state"), param(&params, "state"));
    assert_ne!(param(&again, "nonce"), param(&params, "nonce"));
    assert_ne!(
        param(&again, "code_challenge"),
        param(&params, "code_challenge")
    );

    let unknown = answer(reqwest::Client::new().get(visitor.url(&format!(
        "/cdn-cgi/access/oidc/start?idp=00000000-0000-4000-8000-000000000000&app={}",
        bed.host
    ))))
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let elsewhere = answer(reqwest::Client::new().get(visitor.url(&format!(
        "/cdn-cgi/access/oidc/start?idp=x&app={}&redirect_url=https://evil.example/",
        bed.host
    ))))
    .await;
    assert_eq!(
        elsewhere.status,
        StatusCode::BAD_REQUEST,
        "no open redirect"
    );
}

async fn callbacks_are_single_use_and_bound_to_the_browser(db: TestDb) {
    let bed = LoginBed::start(&db, json!([{"everyone": {}}]), &[]).await;
    add_oidc(&bed, "Corp").await;
    let mut visitor = bed.visitor();
    let (_, params) = start(&bed, &mut visitor).await;
    let state = param(&params, "state").to_string();

    // Another browser with this state (a link sent to a victim) is refused
    // and does not use the sign-in up.
    let mut stranger = bed.visitor();
    let foreign = callback(&mut stranger, &format!("code=c&state={state}")).await;
    assert_eq!(foreign.status, StatusCode::BAD_REQUEST, "{}", foreign.html);

    // A tampered state is refused.
    let mut tampered = state.clone();
    tampered.replace_range(0..1, if state.starts_with('A') { "B" } else { "A" });
    let forged = callback(&mut visitor, &format!("code=c&state={tampered}")).await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);

    // The real one reaches the code exchange (the provider is down: 502)...
    let first = callback(&mut visitor, &format!("code=c&state={state}")).await;
    assert_eq!(first.status, StatusCode::BAD_GATEWAY, "{}", first.html);
    assert!(!first.html.contains("client-s3cret"));
    // ...once: a replay finds it used.
    let (_, params) = start(&bed, &mut visitor).await;
    let fresh = param(&params, "state").to_string();
    let used = callback(&mut visitor, &format!("code=c&state={fresh}")).await;
    assert_eq!(used.status, StatusCode::BAD_GATEWAY);
    let replay_cookie = format!("accessd_oidc_state={fresh}");
    let replay = answer(
        reqwest::Client::new()
            .get(visitor.url(&format!("/cdn-cgi/access/callback?code=c&state={fresh}")))
            .header("cookie", replay_cookie),
    )
    .await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST, "{}", replay.html);
    assert!(replay.html.contains("no longer valid"));
}

async fn garbage_callbacks_are_refused(db: TestDb) {
    let bed = LoginBed::start(&db, json!([{"everyone": {}}]), &[]).await;
    let mut visitor = bed.visitor();
    let long = "x".repeat(9000);
    for query in [
        String::new(),
        "code=abc".to_string(),
        "state=%FF%FE&code=1".to_string(),
        format!("state={long}&code=1"),
        format!("code={long}&state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        "code=1&code=2&state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string(),
    ] {
        let reply = callback(&mut visitor, &query).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query:.40}");
        assert!(
            reply.html.contains("<html") || reply.html.contains("<!doctype"),
            "a page"
        );
    }
}

/// A provider endpoint that misbehaves: `/huge` streams an endless answer
/// without a length, `/hang` never answers.
async fn hostile_endpoint() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let base = format!(
        "http://{}",
        listener
            .local_addr()
            .unwrap_or_else(|e| panic!("address: {e}"))
    );
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let read = socket.read(&mut request).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&request[..read]).to_string();
                if head.contains(" /hang") {
                    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                    return;
                }
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{\"id_token\":\"")
                    .await;
                let chunk = vec![b'a'; 64 * 1024];
                // Up to 1 GiB: only a size limit ends this quickly.
                for _ in 0..16 * 1024 {
                    if socket.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
                let _ = socket.write_all(b"\"}").await;
            });
        }
    });
    base
}

async fn hostile_providers_cannot_hang_or_flood_the_callback(db: TestDb) {
    let bed = LoginBed::start(&db, json!([{"everyone": {}}]), &[]).await;
    let endpoint = hostile_endpoint().await;
    // The endless answer is cut by the size limit, well before the time
    // limit; the silent one by the time limit.
    for (path, at_least, under) in [("/huge", 0, 3), ("/hang", 4, 9)] {
        let idp_id = add_oidc_at(&bed, path, &format!("{endpoint}{path}")).await;
        let mut visitor = bed.visitor();
        let link = format!("/cdn-cgi/access/oidc/start?idp={idp_id}&app={}", bed.host);
        let (_, params) = follow_start(&mut visitor, &link).await;
        let state = param(&params, "state").to_string();
        let began = std::time::Instant::now();
        let reply = callback(&mut visitor, &format!("code=c&state={state}")).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_GATEWAY,
            "{path}: {}",
            reply.html
        );
        let took = began.elapsed();
        assert!(
            took >= std::time::Duration::from_secs(at_least)
                && took < std::time::Duration::from_secs(under),
            "{path} took {took:?}"
        );
    }
    // The server is still well.
    let login = bed.visitor().open_login(&bed.host).await;
    assert_eq!(login.status, StatusCode::OK);
}

/// The provider sends the user back with `error=access_denied`: a page, and
/// the pending sign-in is gone.
async fn a_provider_error_uses_the_sign_in_up(db: TestDb) {
    let bed = LoginBed::start(&db, json!([{"everyone": {}}]), &[]).await;
    add_oidc(&bed, "Corp").await;
    let mut visitor = bed.visitor();
    let (_, params) = start(&bed, &mut visitor).await;
    let state = param(&params, "state").to_string();
    let cookie = format!("accessd_oidc_state={state}");
    let denied = callback(&mut visitor, &format!("error=access_denied&state={state}")).await;
    assert_eq!(denied.status, StatusCode::BAD_GATEWAY, "{}", denied.html);
    let again = answer(
        reqwest::Client::new()
            .get(visitor.url(&format!("/cdn-cgi/access/callback?code=c&state={state}")))
            .header("cookie", cookie),
    )
    .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.html);
}
