//! The store's contract, run against both backends directly (no HTTP), so
//! SQLite and PostgreSQL cannot drift apart.

use accessd::domain::account::{Account, AccountSettings, AccountType};
use accessd::domain::secret::{self, SecretKind};
use accessd::domain::token::{ApiToken, IpCondition, StoredStatus};
use accessd::domain::{AccountId, Timestamp, TokenId};
use accessd::store::accounts::AccountFilter;
use accessd::store::tokens::TokenListing;
use accessd::store::{PageRequest, SortDirection, Store, StoreError};

use crate::common::TestDb;

crate::on_each_backend!(accounts_contract, tokens_contract, throttle_contract);

async fn open(db: &TestDb) -> Store {
    let store = Store::connect(&db.url())
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("migrate: {e}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("migrating twice is a no-op: {e}"));
    store
}

fn account(name: &str, micros: i64) -> Account {
    Account {
        id: AccountId::generate(),
        name: name.to_string(),
        account_type: AccountType::Standard,
        settings: AccountSettings::default(),
        created_on: Timestamp::from_micros(micros),
    }
}

async fn accounts_contract(db: TestDb) {
    let store = open(&db).await;
    let a = account("Alpha_1 %", 1_700_000_000_000_001);
    store
        .create_account(&a)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        store.create_account(&a).await,
        Err(StoreError::Conflict(_))
    ));
    for name in ["beta", "Gamma", "alpha2"] {
        store
            .create_account(&account(name, 1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(
        store.find_account(&a.id).await.ok().flatten(),
        Some(a.clone())
    );
    assert_eq!(
        store
            .find_account(&AccountId::generate())
            .await
            .ok()
            .flatten(),
        None
    );

    let page = PageRequest {
        page: 1,
        per_page: 10,
    };
    let names = |filter: Option<&str>, direction| {
        let store = store.clone();
        let filter = AccountFilter {
            name: filter.map(str::to_string),
        };
        async move {
            store
                .list_accounts(&filter, direction, page)
                .await
                .map(|p| p.items.into_iter().map(|a| a.name).collect::<Vec<_>>())
                .unwrap_or_default()
        }
    };
    assert_eq!(
        names(Some("ALPHA"), SortDirection::Asc).await,
        ["Alpha_1 %", "alpha2"]
    );
    assert_eq!(
        names(Some("_1 %"), SortDirection::Asc).await,
        ["Alpha_1 %"],
        "LIKE wildcards match literally"
    );
    assert_eq!(names(Some("a_"), SortDirection::Asc).await, ["Alpha_1 %"]);
    assert_eq!(
        names(None, SortDirection::Desc)
            .await
            .first()
            .map(String::as_str),
        Some("beta")
    );

    let second = store
        .list_accounts(
            &AccountFilter::default(),
            SortDirection::Asc,
            PageRequest {
                page: 2,
                per_page: 3,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (second.items.len(), second.total_count, second.total_pages()),
        (1, 4, 2)
    );

    let mut renamed = a.clone();
    renamed.name = "Alpha".into();
    renamed.settings.enforce_twofactor = true;
    assert!(store.update_account(&renamed).await.unwrap_or(false));
    assert_eq!(
        store.find_account(&a.id).await.ok().flatten(),
        Some(renamed)
    );
    assert!(store.delete_account(&a.id).await.unwrap_or(false));
    assert!(!store.delete_account(&a.id).await.unwrap_or(true));
}

async fn tokens_contract(db: TestDb) {
    let store = open(&db).await;
    let owner = account("Owner", 1);
    store
        .create_account(&owner)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now = Timestamp::now();
    let token = ApiToken {
        id: TokenId::generate(),
        account_id: owner.id.clone(),
        name: "ci".into(),
        status: StoredStatus::Active,
        policies: Vec::new(),
        condition: IpCondition {
            allow: vec!["10.0.0.0/8".parse().unwrap_or_else(|_| panic!("cidr"))],
            deny: Vec::new(),
        },
        not_before: None,
        expires_on: Some(now.plus_seconds(60)),
        issued_on: now,
        modified_on: now,
        last_used_on: None,
    };
    let secret = secret::mint(SecretKind::AccountToken);
    store
        .create_token(&token, &secret.hash)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        store
            .find_token_by_secret(&secret.hash)
            .await
            .ok()
            .flatten(),
        Some(token.clone())
    );
    assert_eq!(
        store.find_token(&owner.id, &token.id).await.ok().flatten(),
        Some(token.clone())
    );
    assert_eq!(
        store
            .find_token(&AccountId::generate(), &token.id)
            .await
            .ok()
            .flatten(),
        None,
        "scoped to its account"
    );

    let listing = |include_expired, at| TokenListing {
        direction: SortDirection::Asc,
        include_expired,
        now: at,
    };
    let page = PageRequest {
        page: 1,
        per_page: 20,
    };
    let later = now.plus_seconds(120);
    let visible = store
        .list_tokens(&owner.id, listing(false, later), page)
        .await
        .map(|p| p.total_count)
        .ok();
    assert_eq!(visible, Some(0), "expired tokens are hidden by default");
    let all = store
        .list_tokens(&owner.id, listing(true, later), page)
        .await
        .map(|p| p.total_count)
        .ok();
    assert_eq!(all, Some(1));

    store
        .touch_token(&token, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let touched = store.find_token(&owner.id, &token.id).await.ok().flatten();
    assert_eq!(touched.and_then(|t| t.last_used_on), Some(now));

    let rolled = secret::mint(SecretKind::AccountToken);
    assert!(
        store
            .roll_token_secret(&token, token.modified_on, &rolled.hash, now.plus_seconds(1))
            .await
            .unwrap_or(false)
    );
    let stale = secret::mint(SecretKind::AccountToken);
    assert!(
        !store
            .roll_token_secret(&token, token.modified_on, &stale.hash, now)
            .await
            .unwrap_or(true),
        "a roll guarded by a version that has since changed must not apply"
    );
    assert!(
        store
            .find_token_by_secret(&secret.hash)
            .await
            .ok()
            .flatten()
            .is_none()
    );
    assert!(
        store
            .find_token_by_secret(&rolled.hash)
            .await
            .ok()
            .flatten()
            .is_some()
    );

    assert!(store.delete_account(&owner.id).await.unwrap_or(false));
    assert!(
        store
            .find_token_by_secret(&rolled.hash)
            .await
            .ok()
            .flatten()
            .is_none(),
        "tokens go with their account"
    );
}

crate::on_each_backend!(deep_pages_match_a_plain_walk);

/// Thousands of users spread over several counting blocks, with another
/// account's users interleaved and some deleted before and after the
/// snapshot: every page must equal the same slice of a plain ordered walk.
async fn deep_pages_match_a_plain_walk(db: TestDb) {
    use accessd::domain::user::{AccessUser, Email};
    use accessd::store::users::{ListingSnapshot, UserFilter};

    let store = open(&db).await;
    let (mine, theirs) = (account("Mine", 1), account("Theirs", 1));
    for a in [&mine, &theirs] {
        store
            .create_account(a)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let now = Timestamp::now();
    let mut expected = Vec::new();
    for round in 0..6 {
        for (owner, count) in [(&mine, 1500), (&theirs, 700)] {
            let batch: Vec<AccessUser> = (0..count)
                .map(|i| {
                    let email = Email::parse(&format!(
                        "r{round}u{i}@{}.example",
                        owner.name.to_lowercase()
                    ))
                    .unwrap_or_else(|e| panic!("{e}"));
                    AccessUser::new(owner.id.clone(), email, None, now)
                })
                .collect();
            store
                .create_users_bulk(&batch)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            if owner.id == mine.id {
                expected.extend(batch.into_iter().map(|u| u.id));
            }
        }
    }
    // Deleted before the snapshot: gone from it. Deleted after: still in it.
    for gone in expected.iter().step_by(97).cloned().collect::<Vec<_>>() {
        assert!(
            store
                .delete_user(&mine.id, &gone, Timestamp::now())
                .await
                .unwrap_or(false)
        );
        expected.retain(|id| *id != gone);
    }
    let snapshot = store
        .user_listing_snapshot(&mine.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    for late in expected
        .iter()
        .skip(5)
        .step_by(211)
        .cloned()
        .collect::<Vec<_>>()
    {
        assert!(
            store
                .delete_user(&mine.id, &late, Timestamp::now())
                .await
                .unwrap_or(false)
        );
    }
    let after = AccessUser::new(
        mine.id.clone(),
        Email::parse("late@mine.example").unwrap_or_else(|e| panic!("{e}")),
        None,
        Timestamp::now(),
    );
    store
        .create_user(&after)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let filter = UserFilter::default();
    let read = |snapshot: ListingSnapshot, page: u32, per_page: u32| {
        let store = store.clone();
        let filter = filter.clone();
        let account = mine.id.clone();
        async move {
            store
                .list_users(&account, &filter, &snapshot, PageRequest { page, per_page })
                .await
                .map(|p| p.items.into_iter().map(|u| u.id).collect::<Vec<_>>())
                .unwrap_or_else(|e| panic!("{e}"))
        }
    };
    for (page, per_page) in [
        (1, 100),
        (2, 1000),
        (5, 997),
        (9, 1000),
        (40, 200),
        (89, 100),
        (90, 100),
        (2, 5000),
    ] {
        let start = ((page - 1) * per_page) as usize;
        let want: Vec<_> = expected
            .iter()
            .skip(start)
            .take(per_page as usize)
            .cloned()
            .collect();
        assert_eq!(
            read(snapshot.clone(), page, per_page).await,
            want,
            "page {page} of {per_page}"
        );
    }
    let everything: Vec<_> = read(snapshot.clone(), 1, 10_000).await;
    assert_eq!(everything, expected);

    // Once tombstones are purged, a new snapshot counts without them.
    store
        .purge_deleted_users(Timestamp::now().plus_seconds(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let fresh = store
        .user_listing_snapshot(&mine.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let live: Vec<_> = read(fresh.clone(), 1, 10_000).await;
    assert_eq!(
        live.len(),
        expected.len() - expected.iter().skip(5).step_by(211).count() + 1
    );
    for (page, per_page) in [(3, 1000), (8, 1000), (17, 500)] {
        let start = ((page - 1) * per_page) as usize;
        let want: Vec<_> = live
            .iter()
            .skip(start)
            .take(per_page as usize)
            .cloned()
            .collect();
        assert_eq!(
            read(fresh.clone(), page, per_page).await,
            want,
            "after purge: page {page} of {per_page}"
        );
    }
}

/// Concurrent claims on one window never grant more than its limit; the
/// window reopens after its length, and closed windows are purged.
async fn throttle_contract(db: TestDb) {
    use accessd::store::throttle::{Claim, Limit};

    let store = open(&db).await;
    let limit = Limit {
        per_window: 5,
        window_seconds: 600,
    };
    let start = Timestamp::from_micros(1_700_000_000_000_000);
    let mut claims = tokio::task::JoinSet::new();
    for i in 0..30 {
        let store = store.clone();
        claims.spawn(async move {
            store
                .claim_throttle("burst", limit, start.plus_seconds(i % 3))
                .await
        });
    }
    let outcomes: Vec<Claim> = claims
        .join_all()
        .await
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("claim: {e}")))
        .collect();
    let granted = outcomes.iter().filter(|c| **c == Claim::Granted).count();
    assert_eq!(granted, 5, "{outcomes:?}");
    assert!(outcomes.iter().all(|c| match c {
        Claim::Granted => true,
        Claim::Refused {
            retry_after_seconds,
        } => (1..=600).contains(retry_after_seconds),
    }));

    // The burst's claims were stamped up to 2 s after `start`, and the
    // window starts at whichever ran first: 602 s is past it in any order.
    let reopened = store
        .claim_throttle("burst", limit, start.plus_seconds(602))
        .await
        .ok();
    assert_eq!(reopened, Some(Claim::Granted));
    let other_key = store.claim_throttle("other", limit, start).await.ok();
    assert_eq!(other_key, Some(Claim::Granted));

    let purged = store
        .purge_throttle_windows(start.plus_seconds(300))
        .await
        .ok();
    assert_eq!(
        purged,
        Some(1),
        "only the window opened at the start is closed"
    );
}

/// On a PostgreSQL table never analysed (right after a bulk load, before
/// autovacuum's first pass), each user lookup by id or e-mail, and each
/// write to one user, is planned on the index made for it, not on one that
/// makes it scan the account. The WHERE clauses are those of
/// `src/store/users.rs`.
#[tokio::test]
async fn user_lookups_use_their_index_before_any_analyze() {
    use accessd::domain::user::{AccessUser, Email};

    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = open(&db).await;
    let owner = account("Planned", 1);
    store
        .create_account(&owner)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let users: Vec<AccessUser> = (0..3000)
        .map(|i| {
            let email =
                Email::parse(&format!("planned{i}@example.com")).unwrap_or_else(|e| panic!("{e}"));
            AccessUser::new(owner.id.clone(), email, None, Timestamp::now())
        })
        .collect();
    store
        .create_users_bulk(&users)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let pool = sqlx::PgPool::connect(&db.url())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let never_analysed: bool = sqlx::query_scalar(
        "SELECT last_analyze IS NULL AND last_autoanalyze IS NULL \
         FROM pg_stat_user_tables WHERE relname = 'access_users'",
    )
    .fetch_one(&pool)
    .await
    .unwrap_or(false);
    assert!(never_analysed, "the table must not have been analysed yet");

    let (id, account) = (users[1500].id.to_string(), owner.id.to_string());
    let by_id = format!("id = '{id}' AND account_id = '{account}' AND deleted_at IS NULL");
    for (statement, index) in [
        (
            format!("SELECT * FROM access_users WHERE {by_id}"),
            "access_users_id_key",
        ),
        (
            format!("UPDATE access_users SET name = 'x' WHERE {by_id}"),
            "access_users_id_key",
        ),
        (
            format!(
                "SELECT * FROM access_users WHERE account_id = '{account}' \
                 AND email_key = 'planned1500@example.com' AND deleted_at IS NULL"
            ),
            "access_users_by_email",
        ),
    ] {
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {statement}"))
            .fetch_all(&pool)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
        let plan = plan.join("\n");
        assert!(
            plan.contains(&format!("Index Scan using {index} ")),
            "{statement}\n{plan}"
        );
    }
}
