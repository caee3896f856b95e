//! Several processes on one database: an account's first signing key made
//! once however many requests (and, on PostgreSQL, processes) ask for it at
//! the same moment, and the background jobs run by one process at a time.
//!
//! Tests with two processes run on PostgreSQL only: a SQLite file serves
//! one process (README "Running more than one process").

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use accessd::domain::account::{Account, AccountSettings, AccountType};
use accessd::domain::{AccountId, Timestamp};
use accessd::store::Store;
use accessd::store::job_lock::Job;
use accessd::store::sealing::{KEY_LEN, Sealer};

use crate::common::{ADMIN_TOKEN, Server, TestDb, burst, install_tls};
use crate::raw_db::RawDb;

crate::on_each_backend!(
    a_burst_of_first_requests_makes_one_signing_key,
    two_current_keys_left_by_an_old_race_keep_the_newest,
    store_contract_of_job_locks_and_first_keys,
);

const DAY_MICROS: i64 = 86_400_000_000;

/// The account's keys as (kid, "current" or "retired"), oldest first.
async fn keys_of(raw: &RawDb, account: &str) -> Vec<(String, String)> {
    raw.pairs(&format!(
        "SELECT kid, CASE WHEN retired_at IS NULL THEN 'current' ELSE 'retired' END \
         FROM access_signing_keys WHERE account_id = '{account}' ORDER BY created_at, kid"
    ))
    .await
}

fn current(keys: &[(String, String)]) -> Vec<&str> {
    keys.iter()
        .filter(|(_, state)| state == "current")
        .map(|(kid, _)| kid.as_str())
        .collect()
}

/// One process on SQLite; two on PostgreSQL, with the burst split between
/// them (the second started once the first has made the secret key file).
async fn servers_for(db: &TestDb) -> Vec<Server> {
    let mut servers = vec![Server::start(db).await];
    if matches!(db, TestDb::Postgres { .. }) {
        servers.push(Server::start(db).await);
    }
    servers
}

async fn a_burst_of_first_requests_makes_one_signing_key(db: TestDb) {
    let servers = servers_for(&db).await;
    let first = &servers[0];
    let account = first.create_account("Fresh").await;
    let everyone = json!({"name": "All", "decision": "allow", "include": [{"everyone": {}}]});
    first
        .protect(&account, "fresh.example.com", everyone, json!({}))
        .await;

    // Both the keys API and the public certificates make the first key.
    let keys = format!("/accounts/{account}/access/keys");
    let requests = (0..24)
        .map(|i| {
            let server = &servers[i % servers.len()];
            if i % 2 == 0 {
                server.http.get(server.url(&keys)).bearer_auth(ADMIN_TOKEN)
            } else {
                server
                    .http
                    .get(format!("{}/cdn-cgi/access/certs", server.base))
                    .header("host", "fresh.example.com")
            }
        })
        .collect();
    let answers = burst(requests).await;
    let mut created: Vec<&Value> = Vec::new();
    let mut kids: Vec<&Value> = Vec::new();
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        match answer.body.get("result") {
            Some(view) => created.push(&view["last_key_rotation_at"]),
            None => kids.push(&answer.body["keys"][0]["kid"]),
        }
    }
    created.dedup();
    kids.dedup();
    assert_eq!(created.len(), 1, "one key's age everywhere: {created:?}");
    assert_eq!(kids.len(), 1, "one key in every certificate set: {kids:?}");

    let raw = RawDb::open(&first.database_url).await;
    let stored = keys_of(&raw, &account).await;
    assert_eq!(stored.len(), 1, "one key made, none retired: {stored:?}");
    assert_eq!(
        Some(&stored[0].0),
        kids[0].as_str().map(String::from).as_ref()
    );
    raw.close().await;

    // Losing races made no rotation: the first one asked for is allowed.
    let rotated = first
        .post(&format!("{keys}/rotate"), ADMIN_TOKEN, json!({}))
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
}

/// A database where an older version's race left an account two current
/// keys is mended on upgrade: the newest keeps signing.
async fn two_current_keys_left_by_an_old_race_keep_the_newest(db: TestDb) {
    let mut server = Server::start(&db).await;
    let account = server.create_account("Raced").await;
    let keys = format!("/accounts/{account}/access/keys");
    assert_eq!(server.get(&keys, ADMIN_TOKEN).await.status, StatusCode::OK);
    let rotate = format!("{keys}/rotate");
    let rotated = server.post(&rotate, ADMIN_TOKEN, json!({})).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    assert!(server.terminate());

    let raw = RawDb::open(&db.url()).await;
    // Back to the schema before the index, with the retired key current again.
    raw.execute("DROP INDEX access_signing_keys_one_current", &[])
        .await;
    raw.execute("DELETE FROM _sqlx_migrations WHERE version = 14", &[])
        .await;
    raw.execute(
        "UPDATE access_signing_keys SET retired_at = NULL WHERE account_id = $1",
        &[&account],
    )
    .await;
    assert_eq!(current(&keys_of(&raw, &account).await).len(), 2);

    let twins = keys_of(&raw, &account).await;
    let server = Server::start(&db).await;
    let stored = keys_of(&raw, &account).await;
    assert_eq!(current(&stored), [twins[1].0.as_str()], "{stored:?}");
    assert_eq!(stored.len(), 2, "the older one is retired, not lost");
    let view = server.get(&keys, ADMIN_TOKEN).await;
    assert_eq!(view.status, StatusCode::OK, "{}", view.body);
    raw.close().await;
}

/// Two processes whose background jobs fire together: an account due for
/// rotation gets one new key, not one per process.
#[tokio::test]
async fn background_jobs_run_in_one_process_at_a_time() {
    install_tls();
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    // Accounts with keys, made by a process whose jobs have run and will
    // not run again within the test.
    let mut setup = Server::start(&db).await;
    let mut accounts = Vec::new();
    for name in ["One", "Two", "Three"] {
        let account = setup.create_account(name).await;
        let keys = format!("/accounts/{account}/access/keys");
        assert_eq!(setup.get(&keys, ADMIN_TOKEN).await.status, StatusCode::OK);
        accounts.push(account);
    }
    assert!(setup.terminate());
    let raw = RawDb::open(&db.url()).await;
    let now = Timestamp::now().micros();
    raw.execute(
        &format!(
            "UPDATE access_signing_keys SET created_at = {}",
            now - 43 * DAY_MICROS
        ),
        &[],
    )
    .await;

    // Both first ticks come at start-up, then one a second.
    let fast = [
        ("ACCESSD_ADMIN_TOKEN", ADMIN_TOKEN),
        ("ACCESSD_PURGE_INTERVAL", "1s"),
    ];
    let (_one, _two) = tokio::join!(
        Server::start_with(&db, &fast),
        Server::start_with(&db, &fast)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut rotated = 0;
        for account in &accounts {
            if keys_of(&raw, account).await.len() > 1 {
                rotated += 1;
            }
        }
        if rotated == accounts.len() {
            break;
        }
        assert!(Instant::now() < deadline, "not every account was rotated");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A few more rounds in both processes change nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for account in &accounts {
        let stored = keys_of(&raw, account).await;
        assert_eq!(
            stored.len(),
            2,
            "the old key retired and one new key: {stored:?}"
        );
        assert_eq!(current(&stored).len(), 1, "{stored:?}");
    }
    raw.close().await;
}

/// Two stores on one database stand for two processes.
async fn two_stores(db: &TestDb) -> (Store, Store) {
    let sealer = || Sealer::new(&[7; KEY_LEN]).unwrap_or_else(|e| panic!("sealer: {e}"));
    let open = || async {
        let store = Store::connect(&db.url())
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrate: {e}"));
        store.with_sealer(sealer())
    };
    let one = open().await;
    (one, open().await)
}

async fn store_contract_of_job_locks_and_first_keys(db: TestDb) {
    let (one, two) = two_stores(&db).await;
    let on_postgres = matches!(db, TestDb::Postgres { .. });

    let purge = one
        .try_lock_job(Job::Purge)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(purge.is_some());
    let again = two
        .try_lock_job(Job::Purge)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // SQLite serves one process: its lock never refuses.
    assert_eq!(again.is_none(), on_postgres);
    let other_job = two
        .try_lock_job(Job::KeyMaintenance)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(other_job.is_some(), "jobs lock apart");
    let ran = two
        .run_exclusively(Job::Purge, async { "ran" })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ran.is_none(), on_postgres);
    for lock in [purge, again, other_job].into_iter().flatten() {
        lock.release().await.unwrap_or_else(|e| panic!("{e}"));
    }
    let ran = two
        .run_exclusively(Job::Purge, async { "ran" })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ran, Some("ran"), "a released lock is free");
    // A lock dropped without release is freed with its transaction.
    drop(one.try_lock_job(Job::Purge).await);
    let deadline = Instant::now() + Duration::from_secs(5);
    while two
        .run_exclusively(Job::Purge, async {})
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .is_none()
    {
        assert!(Instant::now() < deadline, "a dropped lock stays held");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let account = AccountId::generate();
    let created = Account {
        id: account.clone(),
        name: "Keys".to_string(),
        account_type: AccountType::Standard,
        settings: AccountSettings::default(),
        created_on: Timestamp::now(),
    };
    one.create_account(&created)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let make = || {
        accessd::auth::signing_key::generate(account.to_string())
            .unwrap_or_else(|e| panic!("generate: {e}"))
    };
    let (first, second) = (make(), make());
    let installed = tokio::join!(
        one.install_first_signing_key(&first),
        two.install_first_signing_key(&second)
    );
    let installed = [installed.0, installed.1].map(|r| r.unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(
        installed.iter().filter(|won| **won).count(),
        1,
        "one of two first keys installed: {installed:?}"
    );
    let winner = if installed[0] { &first } else { &second };
    let keys = two
        .signing_keys(&account, Timestamp::now())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
        [winner.kid.as_str()]
    );
    // Once there is a key, a first key is never installed.
    let late = one
        .install_first_signing_key(&make())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!late);
    assert_eq!(
        one.last_key_rotation(&account)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        None,
        "losing a race is no rotation"
    );
    one.close().await;
    two.close().await;
}

/// Processes started together on a new database, with one secret key path,
/// all come up on the one key the first of them wrote.
#[tokio::test]
async fn processes_started_together_share_the_secret_key_they_race_to_make() {
    install_tls();
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let (first, second, third) =
        tokio::join!(Server::start(&db), Server::start(&db), Server::start(&db));
    let account = first.create_account("Together").await;
    let keys = format!("/accounts/{account}/access/keys");
    for server in [&first, &second, &third] {
        assert_eq!(server.get(&keys, ADMIN_TOKEN).await.status, StatusCode::OK);
    }
}
