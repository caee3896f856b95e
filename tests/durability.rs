//! What is acknowledged survives: graceful restarts, kill -9, and the admin
//! token's first-start and rotation paths.

use std::process::Command;

use reqwest::StatusCode;

use crate::common::{ADMIN_TOKEN, Server, TestDb};

crate::on_each_backend!(
    restart_keeps_accounts_and_tokens,
    kill_nine_after_success_loses_nothing,
    generated_admin_token_is_shown_once_and_rotates,
);

async fn restart_keeps_accounts_and_tokens(db: TestDb) {
    let mut server = Server::start(&db).await;
    let account = server.create_account("Durable").await;
    let (token_id, secret) = server
        .create_token(&account, &["eb56a6953c034b9d97dd838155666f06"])
        .await;
    assert!(server.terminate(), "SIGTERM ends the server cleanly");

    let server = Server::start(&db).await;
    let fetched = server
        .get(&format!("/accounts/{account}"), ADMIN_TOKEN)
        .await;
    assert_eq!(fetched.result()["name"], "Durable");
    let tokens = server
        .get(&format!("/accounts/{account}/tokens"), &secret)
        .await;
    assert_eq!(tokens.status, StatusCode::OK);
    assert_eq!(tokens.result()[0]["id"], token_id.as_str());
}

async fn kill_nine_after_success_loses_nothing(db: TestDb) {
    let mut server = Server::start(&db).await;
    let mut created = Vec::new();
    for i in 0..25 {
        created.push(server.create_account(&format!("acct {i:02}")).await);
    }
    server.kill();

    let server = Server::start(&db).await;
    let listed = server.get("/accounts?per_page=50", ADMIN_TOKEN).await;
    let ids: Vec<&str> = listed
        .result()
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["id"].as_str())
        .collect();
    for id in &created {
        assert!(
            ids.contains(&id.as_str()),
            "account {id} acknowledged before kill -9 is missing"
        );
    }
}

async fn generated_admin_token_is_shown_once_and_rotates(db: TestDb) {
    let mut first = Server::start_with(&db, &[]).await;
    let announced = first
        .stdout_lines
        .iter()
        .find_map(|line| extract_secret(line));
    let Some(generated) = announced else {
        panic!(
            "first start prints the admin token: {:?}",
            first.stdout_lines
        );
    };
    assert_eq!(
        first.get("/user/tokens/verify", &generated).await.status,
        StatusCode::OK
    );
    first.terminate();

    let mut second = Server::start_with(&db, &[]).await;
    assert!(
        second
            .stdout_lines
            .iter()
            .all(|line| extract_secret(line).is_none()),
        "the token is shown once only"
    );
    assert_eq!(
        second.get("/user/tokens/verify", &generated).await.status,
        StatusCode::OK
    );
    second.terminate();

    let rotate = Command::new(env!("CARGO_BIN_EXE_accessd"))
        .args(["admin-token", "--database", &db.url()])
        .env("ACCESSD_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("run admin-token: {e}"));
    assert!(rotate.status.success());
    let stdout = String::from_utf8_lossy(&rotate.stdout);
    let Some(rotated) = stdout.lines().find_map(extract_secret) else {
        panic!("admin-token prints the new token: {stdout}");
    };

    let third = Server::start_with(&db, &[]).await;
    assert_eq!(
        third.get("/user/tokens/verify", &rotated).await.status,
        StatusCode::OK
    );
    assert_eq!(
        third.get("/user/tokens/verify", &generated).await.status,
        StatusCode::UNAUTHORIZED
    );
}

fn extract_secret(line: &str) -> Option<String> {
    line.split_whitespace()
        .find(|word| word.starts_with("cfut_"))
        .map(str::to_string)
}
