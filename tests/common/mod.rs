//! The test harness: start the real `accessd` binary on an ephemeral port
//! against a fresh database, and talk HTTP to it.
//!
//! Every test runs on a temporary SQLite file; when `TEST_POSTGRES_URL` is set
//! it runs again on a fresh PostgreSQL database created for it (and dropped
//! after). With `CI` set, a missing `TEST_POSTGRES_URL` is a failure.

#![allow(
    dead_code,
    reason = "each test module uses a different part of the harness"
)]

pub mod login;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sqlx::Connection;

pub const ADMIN_TOKEN: &str = "cfut_AdminTokenForTestsAdminTokenForTests0123456789";

/// A database for one test; a PostgreSQL one is dropped when this goes away.
pub enum TestDb {
    Sqlite { dir: tempfile::TempDir },
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        TestDb::Sqlite { dir }
    }

    /// `None` (with a note) when PostgreSQL is not configured outside CI.
    pub async fn postgres() -> Option<Self> {
        let Some(admin_url) = std::env::var("TEST_POSTGRES_URL")
            .ok()
            .filter(|url| !url.is_empty())
        else {
            assert!(
                std::env::var_os("CI").is_none(),
                "TEST_POSTGRES_URL must be set in CI so every test also runs on PostgreSQL"
            );
            eprintln!("TEST_POSTGRES_URL is not set: PostgreSQL variant not run");
            return None;
        };
        let name = format!("accessd_test_{:016x}", rand::thread_rng().r#gen::<u64>());
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at TEST_POSTGRES_URL: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("create database: {e}"));
        Some(TestDb::Postgres { admin_url, name })
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite { dir } => {
                format!("sqlite://{}", dir.path().join("accessd.db").display())
            }
            TestDb::Postgres { admin_url, name } => {
                let base = admin_url
                    .rsplit_once('/')
                    .map_or(admin_url.as_str(), |(b, _)| b);
                format!("{base}/{name}")
            }
        }
    }
}

impl TestDb {
    /// The secret key file for a PostgreSQL database (a SQLite one keeps its
    /// key next to the database file, the default).
    pub fn secret_key_file(&self) -> Option<std::path::PathBuf> {
        match self {
            TestDb::Sqlite { .. } => None,
            TestDb::Postgres { name, .. } => Some(std::env::temp_dir().join(format!("{name}.key"))),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(key_file) = self.secret_key_file() {
            let _ = std::fs::remove_file(key_file);
        }
        if let TestDb::Postgres { admin_url, name } = self {
            let (url, name) = (admin_url.clone(), name.clone());
            // A fresh thread with its own runtime, since Drop cannot await.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async {
                    let mut conn = sqlx::PgConnection::connect(&url)
                        .await
                        .map_err(std::io::Error::other)?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await
                        .map_err(std::io::Error::other)?;
                    Ok::<_, std::io::Error>(())
                })
            })
            .join();
        }
    }
}

/// HTTP clients here use rustls, which (as in the server) takes its
/// cryptography from aws-lc-rs; installed once per test process.
pub fn install_tls() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Runs a test body once per configured backend.
#[macro_export]
macro_rules! on_each_backend {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                #[tokio::test]
                async fn sqlite() {
                    $crate::common::install_tls();
                    super::$test($crate::common::TestDb::sqlite()).await;
                }

                #[tokio::test]
                async fn postgres() {
                    $crate::common::install_tls();
                    if let Some(db) = $crate::common::TestDb::postgres().await {
                        super::$test(db).await;
                    }
                }
            }
        )*
    };
}

pub struct Server {
    child: Child,
    pub base: String,
    pub database_url: String,
    pub http: reqwest::Client,
    pub stdout_lines: Vec<String>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn result(&self) -> &Value {
        &self.body["result"]
    }

    /// The first error code of a failure envelope, after checking its shape.
    pub fn error_code(&self) -> i64 {
        assert_eq!(self.body["success"], json!(false), "{}", self.body);
        assert_eq!(self.body["result"], Value::Null, "{}", self.body);
        assert_eq!(self.body["messages"], json!([]), "{}", self.body);
        self.body["errors"][0]["code"].as_i64().unwrap_or_default()
    }
}

impl Server {
    /// Starts the binary on `db` with the test admin token.
    pub async fn start(db: &TestDb) -> Server {
        Self::start_with(db, &[("ACCESSD_ADMIN_TOKEN", ADMIN_TOKEN)]).await
    }

    pub async fn start_with(db: &TestDb, env: &[(&str, &str)]) -> Server {
        let database_url = db.url();
        let mut command = Command::new(env!("CARGO_BIN_EXE_accessd"));
        command.args(["serve", "--database", &database_url]);
        // An ACCESSD_LISTEN in `env` chooses the socket; by default, loopback.
        if !env.iter().any(|(key, _)| *key == "ACCESSD_LISTEN") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        command
            .env_remove("ACCESSD_ADMIN_TOKEN")
            .env("ACCESSD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(key_file) = db.secret_key_file() {
            command.env("ACCESSD_SECRET_KEY_FILE", key_file);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn accessd: {e}"));
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("piped stdout"));
        let (base, stdout_lines) = tokio::task::spawn_blocking(move || read_address(stdout))
            .await
            .unwrap_or_else(|e| panic!("reader thread: {e}"));
        Server {
            child,
            base,
            database_url,
            http: reqwest::Client::new(),
            stdout_lines,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/client/v4{path}", self.base)
    }

    pub async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::reply(request).await
    }

    pub async fn reply(request: reqwest::RequestBuilder) -> Reply {
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("request failed: {e}"));
        let status = response.status();
        let headers = response.headers().clone();
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "every answer is JSON"
        );
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call("GET", path, token, None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call("POST", path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call("PUT", path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call("DELETE", path, token, None).await
    }

    /// Creates an account with the admin token and returns its id.
    pub async fn create_account(&self, name: &str) -> String {
        let reply = self
            .post("/accounts", ADMIN_TOKEN, json!({ "name": name }))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.result()["id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Creates a token on `account` allowing `groups`; returns (id, secret).
    pub async fn create_token(&self, account: &str, groups: &[&str]) -> (String, String) {
        let body = token_body("test token", account, groups);
        let reply = self
            .post(&format!("/accounts/{account}/tokens"), ADMIN_TOKEN, body)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let result = reply.result();
        (
            result["id"].as_str().unwrap_or_default().to_string(),
            result["value"].as_str().unwrap_or_default().to_string(),
        )
    }

    /// The server's resident memory, in KiB, as the kernel reports it.
    pub fn resident_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_else(|e| panic!("read /proc status: {e}"));
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in {status}"))
    }

    /// Creates `policy` (a whole policy body) and a self-hosted application
    /// on `domain` guarded by it, with the fields of `extra` (such as
    /// `allowed_idps`) added; returns the application.
    pub async fn protect(&self, account: &str, domain: &str, policy: Value, extra: Value) -> Value {
        let access = format!("/accounts/{account}/access");
        let policy = self
            .post(&format!("{access}/policies"), ADMIN_TOKEN, policy)
            .await;
        assert_eq!(policy.status, StatusCode::CREATED, "{}", policy.body);
        let mut app = json!({"type": "self_hosted", "name": domain, "domain": domain,
                             "policies": [policy.result()["id"]]});
        if let (Some(app), Some(extra)) = (app.as_object_mut(), extra.as_object()) {
            app.extend(extra.clone());
        }
        let app = self.post(&format!("{access}/apps"), ADMIN_TOKEN, app).await;
        assert_eq!(app.status, StatusCode::CREATED, "{}", app.body);
        app.result().clone()
    }

    /// Stops the server the hard way: no shutdown, no flush.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the process to exit; returns its success.
    pub fn terminate(&mut self) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM");
        self.child.wait().is_ok_and(|status| status.success())
    }
}

impl Server {
    /// Sends SIGTERM; whether the process exited (with success) within `limit`.
    pub fn terminate_within(&mut self, limit: Duration) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM");
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Another writer's open transaction holding the write lock on `table`
/// (SQLite locks the whole file); released when dropped.
pub enum WriteLock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl WriteLock {
    pub async fn hold(db: &TestDb, table: &str) -> WriteLock {
        let url = db.url();
        match db {
            TestDb::Sqlite { .. } => {
                let mut conn = sqlx::SqliteConnection::connect(&url)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                WriteLock::Sqlite(conn)
            }
            TestDb::Postgres { .. } => {
                let mut conn = sqlx::PgConnection::connect(&url)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                for statement in [
                    "BEGIN",
                    &format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"),
                ] {
                    sqlx::query(statement)
                        .execute(&mut conn)
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                }
                WriteLock::Postgres(conn)
            }
        }
    }
}

/// Sends all requests at once and waits for every answer (in request order).
pub async fn burst(requests: Vec<reqwest::RequestBuilder>) -> Vec<Reply> {
    all_at_once(requests, Server::reply).await
}

/// Sends all requests at once, reads each answer with `read`, and returns
/// them in request order.
pub async fn all_at_once<T, F>(
    requests: Vec<reqwest::RequestBuilder>,
    read: fn(reqwest::RequestBuilder) -> F,
) -> Vec<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for (i, request) in requests.into_iter().enumerate() {
        let answer = read(request);
        tasks.spawn(async move { (i, answer.await) });
    }
    let mut answers = tasks.join_all().await;
    answers.sort_by_key(|(i, _)| *i);
    answers.into_iter().map(|(_, answer)| answer).collect()
}

pub fn token_body(name: &str, account: &str, groups: &[&str]) -> Value {
    let groups: Vec<Value> = groups.iter().map(|id| json!({ "id": id })).collect();
    json!({
        "name": name,
        "policies": [{
            "effect": "allow",
            "permission_groups": groups,
            "resources": { format!("com.cloudflare.api.account.{account}"): "*" }
        }]
    })
}

fn read_address(stdout: std::process::ChildStdout) -> (String, Vec<String>) {
    let mut reader = BufReader::new(stdout);
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut line = String::new();
        let read = reader.read_line(&mut line).unwrap_or(0);
        assert!(
            read > 0,
            "accessd exited before listening; stdout so far: {lines:?}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "accessd did not start in 30 s"
        );
        if let Some(at) = line.find("listening on http://") {
            let address = line[at + "listening on ".len()..].trim().to_string();
            lines.push(line);
            // Keep draining stdout so the server never blocks on a full pipe.
            std::thread::spawn(move || {
                let mut sink = String::new();
                while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
                    sink.clear();
                }
            });
            // A wildcard IPv6 socket also takes IPv4 loopback connections.
            let address = address.replace("http://[::]", "http://127.0.0.1");
            return (address, lines);
        }
        lines.push(line);
    }
}
