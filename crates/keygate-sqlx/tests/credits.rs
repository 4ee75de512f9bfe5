//! Credits in the SQL stores beyond the conformance suite: several
//! instances (two repositories, each with a pool of its own, as two
//! `keygate serve` processes) racing for one key's credits on one database;
//! how the credits columns are read, written and refused; and a database
//! keygate migrated before usage limits.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use keygate::prelude::*;
use keygate::testing::{at, audit, key};
use keygate::{
    ApiKeyFilter, AuditAction, CreditUse, Credits, KeyChange, RateLimit, RefillInterval, StoreError,
};
use keygate_sqlx::SqlRepository;
use sqlx::migrate::Migrator;
use tokio::sync::Barrier;

const CALLERS: usize = 200;
const CREDITS: u64 = 50;

/// `CALLERS` calls at once, alternating between the two repositories;
/// every result (an error fails the test: a busy database must wait, not
/// fail).
async fn race(repos: [&SqlRepository; 2], id: &str, now: DateTime<Utc>) -> Vec<CreditUse> {
    let start = Arc::new(Barrier::new(CALLERS));
    let tasks: Vec<_> = (0..CALLERS)
        .map(|i| {
            let (repo, id, start) = (repos[i % 2].clone(), id.to_owned(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                repo.consume_credits(&id, 1, now).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.expect("task") {
            Ok(used) => results.push(used),
            Err(e) => panic!("caller {i} (repository {}) failed: {e}", i % 2 + 1),
        }
    }
    results
}

/// Exactly `CREDITS` successes, each remaining count seen once, the rest
/// refused.
fn assert_exactly_the_credits(results: &[CreditUse], phase: &str) {
    let mut taken: Vec<u64> = results
        .iter()
        .filter_map(|r| match r {
            CreditUse::Taken { remaining } => Some(*remaining),
            _ => None,
        })
        .collect();
    taken.sort_unstable();
    assert_eq!(taken, (0..CREDITS).collect::<Vec<_>>(), "{phase}");
    let refused = results.iter().filter(|r| **r == CreditUse::Refused).count();
    assert_eq!(refused, CALLERS - CREDITS as usize, "{phase}");
}

/// Two instances race 200 calls for 50 credits: exactly 50 succeed. Then,
/// at the next interval, for the refill: it happens once (a refill applied
/// by two callers would let 100 through).
async fn two_instances_take_exactly_the_credits(store: support::Store) {
    let first = store.sql.clone().expect("a SQL store");
    let second = store.reopen().await;
    let day = at(0);
    let mut k = key(Some("shared"), &[]);
    k.credits = Some(
        Credits::new(CREDITS)
            .refilled(CREDITS, RefillInterval::Daily)
            .configured_at(day),
    );
    first.insert(&k, &audit(AuditAction::Create)).await.unwrap();

    let results = race([&first, &second], &k.id, day).await;
    assert_exactly_the_credits(&results, "the first 50");
    for repo in [&first, &second] {
        let stored = repo.get(&k.id).await.unwrap().unwrap().credits.unwrap();
        assert_eq!(stored.remaining, 0);
    }

    let next_day = RefillInterval::Daily.next_after(day) + TimeDelta::minutes(5);
    let results = race([&second, &first], &k.id, next_day).await;
    assert_exactly_the_credits(&results, "the refill");
    let stored = second.get(&k.id).await.unwrap().unwrap().credits.unwrap();
    assert_eq!(
        (stored.remaining, stored.last_refill_at),
        (0, Some(RefillInterval::Daily.start_of(next_day)))
    );
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_two_pools_on_one_file_take_exactly_the_credits() {
    let store = support::sqlite().await.unwrap();
    two_instances_take_exactly_the_credits(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_pools_take_exactly_the_credits() {
    let Some(store) = support::postgres().await else {
        return;
    };
    two_instances_take_exactly_the_credits(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_two_pools_take_exactly_the_credits() {
    let Some(store) = support::mysql().await else {
        return;
    };
    two_instances_take_exactly_the_credits(store).await;
}

/// Extreme costs and bounds, straight to the store (the service refuses a
/// cost above `MAX_COST` and clamps `credits_below`): a cost beyond what a
/// column holds is refused for a metered key and unmetered for the others,
/// and `credits_below: u64::MAX` finds every metered key.
async fn extremes(store: support::Store) {
    let repo = store.sql.clone().unwrap();
    let mut metered = key(Some("metered"), &[]);
    metered.credits = Some(Credits::new(keygate::MAX_CREDITS));
    let free = key(Some("free"), &[]);
    for k in [&metered, &free] {
        repo.insert(k, &audit(AuditAction::Create)).await.unwrap();
    }
    for cost in [u64::MAX, i64::MAX as u64 + 1, keygate::MAX_CREDITS + 1] {
        assert_eq!(
            repo.consume_credits(&metered.id, cost, at(0))
                .await
                .unwrap(),
            CreditUse::Refused,
            "{cost}"
        );
        assert_eq!(
            repo.consume_credits(&free.id, cost, at(0)).await.unwrap(),
            CreditUse::Unmetered,
            "{cost}"
        );
    }
    assert_eq!(
        repo.consume_credits(&metered.id, keygate::MAX_CREDITS, at(0))
            .await
            .unwrap(),
        CreditUse::Taken { remaining: 0 }
    );
    for below in [u64::MAX, i64::MAX as u64 + 1, 1] {
        let filter = ApiKeyFilter {
            credits_below: Some(below),
            ..ApiKeyFilter::default()
        };
        let found = repo.find(&filter).await.unwrap();
        assert_eq!(found.len(), 1, "{below}");
        assert_eq!(found[0].id, metered.id);
        assert_eq!(repo.count(&filter).await.unwrap(), 1, "{below}");
    }
    // A count no column holds is refused with a clear error, nothing stored.
    let mut huge = key(Some("huge"), &[]);
    huge.credits = Some(Credits::new(u64::MAX));
    let refused = repo.insert(&huge, &audit(AuditAction::Create)).await;
    assert!(
        matches!(&refused, Err(e) if e.to_string().contains("too large to store")),
        "{refused:?}"
    );
    assert_eq!(repo.get(&huge.id).await.unwrap(), None);
}

#[tokio::test]
async fn sqlite_extremes() {
    extremes(support::sqlite().await.unwrap()).await;
}

#[tokio::test]
async fn postgres_extremes() {
    let Some(store) = support::postgres().await else {
        return;
    };
    extremes(store).await;
}

#[tokio::test]
async fn mysql_extremes() {
    let Some(store) = support::mysql().await else {
        return;
    };
    extremes(store).await;
}

fn corrupt(result: Result<Option<keygate::ApiKey>, StoreError>, column: &str) {
    assert!(
        matches!(&result, Err(StoreError::Corrupt(m)) if m.contains(column)),
        "{column}: {result:?}"
    );
}

#[tokio::test]
async fn sqlite_credits_columns_are_read_strictly_and_written_together() {
    let store = support::sqlite().await.unwrap();
    let repo = store.sql.clone().unwrap();
    let pool = repo.sqlite().unwrap().pool().clone();
    let mut k = key(Some("k"), &[]);
    k.credits = Some(Credits::new(5).refilled(9, RefillInterval::Hourly));
    k.rate_limits = Some(vec![RateLimit::new("burst", 3, Duration::from_secs(1))]);
    repo.insert(&k, &audit(AuditAction::Create)).await.unwrap();
    let set = |sql: &'static str| {
        let (pool, id) = (pool.clone(), k.id.clone());
        async move {
            sqlx::query(sql).bind(id).execute(&pool).await.unwrap();
        }
    };

    set("UPDATE api_keys SET credits_refill_interval = 'weekly' WHERE id = ?").await;
    corrupt(repo.get(&k.id).await, "credits_refill_interval");
    // Taking credits on such a row fails closed.
    assert_eq!(
        repo.consume_credits(&k.id, 1, at(0)).await.unwrap(),
        CreditUse::Refused
    );
    set("UPDATE api_keys SET credits_refill_interval = 'hourly', credits_remaining = -1 WHERE id = ?")
        .await;
    corrupt(repo.get(&k.id).await, "credits_remaining");
    set("UPDATE api_keys SET credits_remaining = 5, rate_limits = '{\"burst\": 3}' WHERE id = ?")
        .await;
    corrupt(repo.get(&k.id).await, "rate_limits");
    set("UPDATE api_keys SET rate_limits = NULL, credits_last_refill_at = 'noonish' WHERE id = ?")
        .await;
    corrupt(repo.get(&k.id).await, "credits_last_refill_at");

    // Without credits_remaining the key is unlimited, whatever is left in
    // the other credits columns ...
    set("UPDATE api_keys SET credits_remaining = NULL, credits_last_refill_at = NULL WHERE id = ?")
        .await;
    let read = repo.get(&k.id).await.unwrap().unwrap();
    assert_eq!((read.credits, read.rate_limits), (None, None));
    assert_eq!(
        repo.consume_credits(&k.id, 1, at(0)).await.unwrap(),
        CreditUse::Unmetered
    );
    // ... and credits set later do not inherit the leftovers.
    let change = KeyChange {
        credits: Some(Some(Credits::new(3))),
        ..KeyChange::default()
    };
    repo.update(&k.id, &change, &audit(AuditAction::Update))
        .await
        .unwrap();
    let row: (Option<i64>, Option<i64>, Option<String>) = sqlx::query_as(
        "SELECT credits_remaining, credits_refill_amount, credits_refill_interval \
         FROM api_keys WHERE id = ?",
    )
    .bind(&k.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(row, (Some(3), None, None));
    assert_eq!(
        repo.get(&k.id).await.unwrap().unwrap().credits,
        Some(Credits::new(3))
    );
}

/// A database keygate migrated before usage limits (the first two
/// migrations) is readable without them, refuses changes and credit use
/// until migrated, and then gains the columns with every row unchanged.
#[tokio::test]
async fn sqlite_database_from_before_usage_limits() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let old = SqlRepository::connect(&url).await.unwrap();
    let mut migrator = Migrator::new(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/sqlite"
    )))
    .await
    .unwrap();
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|m| m.version < 20261202000000)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    assert_eq!(migrator.migrations.len(), 2);
    let pool = old.sqlite().unwrap().pool().clone();
    migrator.run(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO api_keys (id, name, description, is_active, expires_at, created_at, \
         last_used_at, key_id, key_hash, key_secret_first, key_secret_last, scopes, owner_id, meta) \
         VALUES ('0123456789abcdef0123456789abcdef', 'old', NULL, 1, NULL, \
         '2026-12-01 10:00:00.000000', NULL, '0123456789abcdef', 'h', 'abcd', 'wxyz', \
         '[\"read\"]', 'team-1', '{\"plan\":\"pro\"}')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let id = "0123456789abcdef0123456789abcdef";

    let read = old.get(id).await.unwrap().unwrap();
    // Another instance, which only reads and never migrates.
    let reader = SqlRepository::connect(&url).await.unwrap();
    assert_eq!(reader.get(id).await.unwrap().as_ref(), Some(&read));
    assert_eq!(read.owner_id.as_deref(), Some("team-1"));
    assert_eq!(
        (read.credits.as_ref(), read.rate_limits.as_ref()),
        (None, None)
    );
    assert_eq!(
        old.find(&ApiKeyFilter::default()).await.unwrap(),
        std::slice::from_ref(&read)
    );
    let change = KeyChange {
        credits: Some(Some(Credits::new(3))),
        ..KeyChange::default()
    };
    for refused in [
        old.update(id, &change, &audit(AuditAction::Update))
            .await
            .map(drop),
        old.consume_credits(id, 1, at(0)).await.map(drop),
    ] {
        assert!(
            matches!(&refused, Err(StoreError::InvalidConfig(m)) if m.contains("keygate migrate")),
            "{refused:?}"
        );
    }

    old.migrate().await.unwrap();
    assert_eq!(old.get(id).await.unwrap().unwrap(), read);
    let changed = old
        .update(id, &change, &audit(AuditAction::Update))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.credits, Some(Credits::new(3)));
    assert_eq!(
        old.consume_credits(id, 1, at(0)).await.unwrap(),
        CreditUse::Taken { remaining: 2 }
    );
    // The reader notices the migration within a second: it does not go on
    // reading the key as unlimited.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        reader.get(id).await.unwrap().unwrap().credits,
        Some(Credits::new(2))
    );
}
