//! Secrets on disk: owner-only files, signing keys and client secrets
//! sealed in the database, old clear rows sealed on start, and a wrong or
//! missing secret key refusing to start.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{ADMIN_TOKEN, Server, TestDb};
use crate::raw_db::{RawDb, secret_key_file};

crate::on_each_backend!(
    files_holding_secrets_are_owner_only,
    secrets_are_sealed_in_the_database,
    clear_secrets_of_older_versions_are_sealed_on_start,
    wrong_or_missing_secret_key_refuses_to_start,
);

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Makes the account's signing key (on first use) and an OIDC provider.
async fn make_secrets(server: &Server) -> String {
    let account = server.create_account("Home").await;
    let keys = server
        .get(&format!("/accounts/{account}/access/keys"), ADMIN_TOKEN)
        .await;
    assert_eq!(keys.status, StatusCode::OK, "{}", keys.body);
    let idp = server
        .post(
            &format!("/accounts/{account}/access/identity_providers"),
            ADMIN_TOKEN,
            json!({"name": "Corp", "type": "oidc", "config": {
                "client_id": "accessd", "client_secret": "oidc-client-s3cret",
                "auth_url": "https://idp.example.com/auth", "token_url": "https://idp.example.com/token",
                "certs_url": "https://idp.example.com/jwks"}}),
        )
        .await;
    assert!(idp.status.is_success(), "{}", idp.body);
    account
}

/// Sends a sign-in code through the real login pages, so the outbox gets a message.
async fn send_sign_in_code(server: &Server, account: &str) {
    let base = format!("/accounts/{account}/access");
    let pin = server
        .post(
            &format!("{base}/identity_providers"),
            ADMIN_TOKEN,
            json!({"name": "PIN", "type": "onetimepin", "config": {}}),
        )
        .await;
    let pin_id = pin.result()["id"].as_str().unwrap_or_default().to_string();
    let everyone = json!({"name": "All", "decision": "allow", "include": [{"everyone": {}}]});
    server
        .protect(
            account,
            "wiki.example.com",
            everyone,
            json!({"name": "Wiki", "allowed_idps": [pin_id]}),
        )
        .await;
    let login = server
        .http
        .get(format!("{}/cdn-cgi/access/login/wiki.example.com?redirect_url=http%3A%2F%2Fwiki.example.com%2F", server.base))
        .send()
        .await
        .unwrap_or_else(|e| panic!("login page: {e}"));
    let cookies: Vec<String> = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next().map(str::to_string))
        .collect();
    let page = login.text().await.unwrap_or_default();
    let field = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        page.split_once(&marker)
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(value, _)| value.replace("&amp;", "&").replace("&#x2F;", "/"))
            .unwrap_or_default()
    };
    let form = [
        ("app", field("app")),
        ("redirect_url", field("redirect_url")),
        ("email", "ada@example.com".to_string()),
        ("csrf", field("csrf")),
    ];
    let sent = server
        .http
        .post(format!("{}/cdn-cgi/access/otp/send", server.base))
        .header("cookie", cookies.join("; "))
        .form(&form)
        .send()
        .await
        .unwrap_or_else(|e| panic!("send code: {e}"));
    assert_eq!(
        sent.status(),
        StatusCode::OK,
        "{}",
        sent.text().await.unwrap_or_default()
    );
}

async fn files_holding_secrets_are_owner_only(db: TestDb) {
    let outbox = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let outbox_dir = outbox.path().join("outbox");
    let outbox_str = outbox_dir.display().to_string();
    let server = Server::start_with(
        &db,
        &[
            ("ACCESSD_ADMIN_TOKEN", ADMIN_TOKEN),
            ("ACCESSD_OUTBOX", &outbox_str),
        ],
    )
    .await;
    let account = make_secrets(&server).await;
    send_sign_in_code(&server, &account).await;

    assert_eq!(mode(&secret_key_file(&db)), 0o600, "secret key file");
    assert_eq!(mode(&outbox_dir), 0o700, "outbox folder");
    let messages: Vec<_> = std::fs::read_dir(&outbox_dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(Result::ok)
        .collect();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        mode(&messages[0].path()),
        0o600,
        "message with a sign-in code"
    );
    if let TestDb::Sqlite { .. } = db {
        let url = db.url();
        let file = url.trim_start_matches("sqlite://");
        for suffix in ["", "-wal", "-shm"] {
            let path = format!("{file}{suffix}");
            assert_eq!(mode(Path::new(&path)), 0o600, "{path}");
        }
    }
}

async fn secrets_are_sealed_in_the_database(db: TestDb) {
    let server = Server::start(&db).await;
    make_secrets(&server).await;
    let raw = RawDb::open(&server.database_url).await;
    let keys = raw
        .pairs("SELECT kid, private_pem FROM access_signing_keys")
        .await;
    assert_eq!(keys.len(), 1);
    assert!(keys[0].1.starts_with("sealed:v1:"), "{}", keys[0].1);
    assert!(!keys[0].1.contains("PRIVATE KEY"));
    let idps = raw
        .pairs("SELECT id, config FROM access_identity_providers")
        .await;
    assert!(
        idps.iter()
            .all(|(_, config)| !config.contains("oidc-client-s3cret")),
        "{idps:?}"
    );
    assert!(
        idps.iter()
            .any(|(_, config)| config.contains("\"client_secret\":\"sealed:v1:"))
    );
    raw.close().await;
}

async fn clear_secrets_of_older_versions_are_sealed_on_start(db: TestDb) {
    let mut server = Server::start(&db).await;
    let account = make_secrets(&server).await;
    let certs_before = server
        .get(&format!("/accounts/{account}/access/keys"), ADMIN_TOKEN)
        .await;
    server.kill();

    // Store the secrets in clear, as versions before sealing did.
    let key_hex = std::fs::read_to_string(secret_key_file(&db)).unwrap_or_default();
    let key: [u8; 32] = hex::decode(key_hex.trim())
        .ok()
        .and_then(|k| k.try_into().ok())
        .unwrap_or_else(|| panic!("key file holds 64 hex digits"));
    let sealer = accessd::store::sealing::Sealer::new(&key).unwrap_or_else(|e| panic!("{e}"));
    let raw = RawDb::open(&db.url()).await;
    let (kid, sealed) = raw
        .pairs("SELECT kid, private_pem FROM access_signing_keys")
        .await
        .remove(0);
    let pem = sealer
        .open(&sealed, &format!("signing key {kid}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    raw.execute("UPDATE access_signing_keys SET private_pem = $1", &[&pem])
        .await;
    let (idp_id, config) = raw
        .pairs("SELECT id, config FROM access_identity_providers")
        .await
        .remove(0);
    let mut config: serde_json::Value = serde_json::from_str(&config).unwrap_or_default();
    config["client_secret"] = json!("oidc-client-s3cret");
    raw.execute(
        "UPDATE access_identity_providers SET config = $1 WHERE id = $2",
        &[&config.to_string(), &idp_id],
    )
    .await;

    let server = Server::start(&db).await;
    let keys = raw
        .pairs("SELECT kid, private_pem FROM access_signing_keys")
        .await;
    assert_eq!(keys.len(), 1);
    assert!(keys[0].1.starts_with("sealed:v1:"), "sealed again on start");
    assert_eq!(keys[0].0, kid, "the same key, not a new one");
    let idps = raw
        .pairs("SELECT id, config FROM access_identity_providers")
        .await;
    assert!(!idps[0].1.contains("oidc-client-s3cret"));
    let certs_after = server
        .get(&format!("/accounts/{account}/access/keys"), ADMIN_TOKEN)
        .await;
    assert_eq!(
        certs_after.result()["last_key_rotation_at"],
        certs_before.result()["last_key_rotation_at"]
    );
    raw.close().await;
}

/// Starts the server expecting it to refuse; returns what it printed on stderr.
fn start_refused(db: &TestDb) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_accessd"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &db.url()])
        .env("ACCESSD_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("ACCESSD_LOG", "warn")
        .env("ACCESSD_SECRET_KEY_FILE", secret_key_file(db))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap_or_else(|e| panic!("spawn: {e}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(!status.success(), "start must fail");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("accessd started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    stderr
}

async fn wrong_or_missing_secret_key_refuses_to_start(db: TestDb) {
    let mut server = Server::start(&db).await;
    make_secrets(&server).await;
    server.kill();
    let key_file = secret_key_file(&db);
    let original = std::fs::read(&key_file).unwrap_or_default();

    std::fs::write(&key_file, format!("{}\n", "ab".repeat(32))).unwrap_or_else(|e| panic!("{e}"));
    let stderr = start_refused(&db);
    assert!(
        stderr.contains("does not belong to this database"),
        "{stderr}"
    );

    std::fs::remove_file(&key_file).unwrap_or_else(|e| panic!("{e}"));
    let stderr = start_refused(&db);
    assert!(stderr.contains("is missing"), "{stderr}");
    assert!(
        !key_file.exists(),
        "no new key is made for a database with sealed secrets"
    );

    std::fs::write(&key_file, original).unwrap_or_else(|e| panic!("{e}"));
    let server = Server::start(&db).await;
    let account = server.create_account("Again").await;
    assert!(!account.is_empty());
}
