//! Drives the sign-in pages as a browser without JavaScript would, reading
//! codes from the server's outbox folder.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::{ADMIN_TOKEN, Server, TestDb};

/// A server whose codes land in an outbox folder, with an account, a PIN
/// provider and an application at `localhost:<port>` guarded by one policy.
pub struct LoginBed {
    pub server: Server,
    pub outbox: tempfile::TempDir,
    pub account: String,
    pub host: String,
    pub app_id: String,
}

/// One page the sign-in flow answered.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub html: String,
}

impl Answer {
    /// The application token a successful sign-in hands to the
    /// application's host, in the `Location` it redirects to.
    pub fn app_token(&self) -> String {
        let location = self
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        location
            .split_once('?')
            .map_or("", |(_, query)| query)
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .unwrap_or_else(|| panic!("no token in {location:?}"))
            .to_string()
    }

    /// The value of the hidden form field `name`.
    pub fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        self.html
            .split_once(&marker)
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(value, _)| value.to_string())
            .unwrap_or_else(|| panic!("no field {name} in {}", self.html))
    }
}

impl LoginBed {
    /// `include` is the allow policy's include rules.
    pub async fn start(db: &TestDb, include: Value, env: &[(&str, &str)]) -> LoginBed {
        let policy = json!({"name": "Allow", "decision": "allow", "include": include});
        Self::start_with_policy(db, policy, env).await
    }

    /// The application is guarded by `policy`, a whole policy body.
    pub async fn start_with_policy(db: &TestDb, policy: Value, env: &[(&str, &str)]) -> LoginBed {
        let outbox = tempfile::tempdir().unwrap_or_else(|e| panic!("outbox dir: {e}"));
        let outbox_path = outbox.path().display().to_string();
        let mut all_env = vec![
            ("ACCESSD_ADMIN_TOKEN", super::ADMIN_TOKEN),
            ("ACCESSD_OUTBOX", outbox_path.as_str()),
        ];
        all_env.extend_from_slice(env);
        let server = Server::start_with(db, &all_env).await;
        let account = server.create_account("Sign-in").await;
        let access = format!("/accounts/{account}/access");
        let idp = server
            .post(
                &format!("{access}/identity_providers"),
                ADMIN_TOKEN,
                json!({"name": "PIN", "type": "onetimepin", "config": {}}),
            )
            .await;
        assert!(idp.status.is_success(), "{}", idp.body);
        let port = server.base.rsplit(':').next().unwrap_or_default();
        let host = format!("localhost:{port}");
        let app = server
            .protect(&account, &host, policy, json!({"name": "Wiki"}))
            .await;
        let app_id = app["id"].as_str().unwrap_or_default().to_string();
        LoginBed {
            server,
            outbox,
            account,
            host,
            app_id,
        }
    }

    pub fn visitor(&self) -> Visitor {
        Visitor::new(&self.server.base)
    }

    /// The code in the newest message in the outbox.
    pub fn newest_code(&self) -> String {
        newest_code(self.outbox.path())
    }

    /// Every message in the outbox.
    pub fn messages(&self) -> Vec<PathBuf> {
        messages(self.outbox.path())
    }

    /// The login page, then a code for `email`: the code page.
    pub async fn ask_code(&self, visitor: &mut Visitor, email: &str) -> Answer {
        let login = visitor.open_login(&self.host).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.html);
        visitor.send_code(&login, email).await
    }

    /// The whole flow for `email`; the answer to the code.
    pub async fn sign_in(&self, email: &str) -> Answer {
        let mut visitor = self.visitor();
        let code_page = self.ask_code(&mut visitor, email).await;
        assert_eq!(code_page.status, StatusCode::OK, "{}", code_page.html);
        let code = self.newest_code();
        visitor.verify(&code_page, &code).await
    }
}

pub fn messages(outbox: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(outbox)
        .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
}

fn newest_code(outbox: &Path) -> String {
    let newest = messages(outbox)
        .pop()
        .unwrap_or_else(|| panic!("no message in the outbox"));
    let text = std::fs::read_to_string(&newest).unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix("Subject: "))
        .and_then(|subject| subject.split_whitespace().next())
        .filter(|code| code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no code in {text}"))
        .to_string()
}

/// One browser: a cookie jar and no automatic redirects.
pub struct Visitor {
    base: String,
    http: reqwest::Client,
    cookies: Vec<(String, String)>,
}

impl Visitor {
    pub fn new(base: &str) -> Visitor {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|e| panic!("client: {e}"));
        Visitor {
            base: base.to_string(),
            http,
            cookies: Vec::new(),
        }
    }

    /// A browser that reaches the server at `base` by the name `team_host`
    /// (`name:port`), as DNS would send a team domain there.
    pub fn at_team_domain(base: &str, team_host: &str) -> Visitor {
        let (name, _) = team_host.split_once(':').unwrap_or((team_host, ""));
        let address: std::net::SocketAddr = base
            .trim_start_matches("http://")
            .parse()
            .unwrap_or_else(|e| panic!("base {base}: {e}"));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(name, address)
            .build()
            .unwrap_or_else(|e| panic!("client: {e}"));
        Visitor {
            base: format!("http://{team_host}"),
            http,
            cookies: Vec::new(),
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A form post carrying this browser's cookies, not yet sent.
    pub fn form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::RequestBuilder {
        self.http
            .post(self.url(path))
            .header("cookie", self.cookie_header())
            .form(fields)
    }

    pub async fn send(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let answer = answer(request).await;
        for value in answer.headers.get_all("set-cookie") {
            let text = value.to_str().unwrap_or_default();
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.retain(|(k, _)| k != name);
                self.cookies.push((name.to_string(), value.to_string()));
            }
        }
        answer
    }

    pub async fn open_login(&mut self, host: &str) -> Answer {
        let redirect = format!("http://{host}/");
        let request = self
            .http
            .get(self.url(&format!("/cdn-cgi/access/login/{host}")))
            .query(&[("redirect_url", redirect.as_str())])
            .header("cookie", self.cookie_header());
        self.send(request).await
    }

    pub fn send_code_request(&self, login: &Answer, email: &str) -> reqwest::RequestBuilder {
        let (app, redirect, csrf) = (
            login.field("app"),
            login.field("redirect_url"),
            login.field("csrf"),
        );
        self.form(
            "/cdn-cgi/access/otp/send",
            &[
                ("app", &app),
                ("redirect_url", &redirect),
                ("email", email),
                ("csrf", &csrf),
            ],
        )
    }

    pub async fn send_code(&mut self, login: &Answer, email: &str) -> Answer {
        let request = self.send_code_request(login, email);
        self.send(request).await
    }

    pub fn verify_request(&self, code_page: &Answer, code: &str) -> reqwest::RequestBuilder {
        let (challenge, csrf) = (code_page.field("challenge"), code_page.field("csrf"));
        self.form(
            "/cdn-cgi/access/otp/verify",
            &[("challenge", &challenge), ("code", code), ("csrf", &csrf)],
        )
    }

    pub async fn verify(&mut self, code_page: &Answer, code: &str) -> Answer {
        let request = self.verify_request(code_page, code);
        self.send(request).await
    }
}

pub async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("request failed: {e}"));
    let status = response.status();
    let headers = response.headers().clone();
    let html = response.text().await.unwrap_or_default();
    Answer {
        status,
        headers,
        html,
    }
}

/// Sends all requests at once; the answers in request order.
pub async fn burst_pages(requests: Vec<reqwest::RequestBuilder>) -> Vec<Answer> {
    super::all_at_once(requests, answer).await
}
