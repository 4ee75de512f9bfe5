//! Differential: a search filter decoded from JSON gives the same keys, in
//! the same order, and the same count on a SQL store as on
//! `InMemoryRepository` (the reference semantics of `ApiKeyFilter`).
//!
//! Needs the `sql` feature (it builds sqlx, so it is not in the CI smoke):
//!
//!   cargo fuzz run -s none --features sql store_diff
//!   KEYGATE_FUZZ_STORE_URL=postgres://postgres@127.0.0.1:5432/fuzz cargo fuzz run ...
//!
//! The store is SQLite in memory unless `KEYGATE_FUZZ_STORE_URL` names
//! another (an empty database of its own: every key in it is deleted at
//! start). Both stores hold the same few keys, among them timestamps at
//! the edges of years 1..=9999; filters may name any time JSON can carry
//! (an RFC 3339 time with an offset can land in year 0 or 10000 in UTC).
//! Names hold no non-ASCII capital: SQLite folds ASCII only, a documented
//! deviation.
//!
//! Invariants: nothing panics; neither store fails; `find` gives the same
//! ids in the same order and `count` the same number.
#![no_main]

use std::cell::RefCell;

use chrono::{DateTime, NaiveDate, Utc};
use keygate::prelude::*;
use keygate::{
    ApiKey, ApiKeyFilter, Audit, AuditAction, Credits, InMemoryRepository, RateLimit,
    RefillInterval, ScopeSet, MAX_CREDITS,
};
use keygate_sqlx::SqlRepository;
use libfuzzer_sys::fuzz_target;

fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, us: u32) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(y, mo, d)
        .and_then(|d| d.and_hms_micro_opt(h, mi, s, us))
        .expect("valid time")
        .and_utc()
}

#[allow(clippy::too_many_arguments)]
fn key(
    n: u8,
    name: Option<&str>,
    active: bool,
    created: DateTime<Utc>,
    used: Option<DateTime<Utc>>,
    expires: Option<DateTime<Utc>>,
    scopes: ScopeSet,
    owner: Option<&str>,
) -> ApiKey {
    ApiKey {
        id: format!("{n:032x}"),
        key_id: format!("{n:016x}"),
        name: name.map(Into::into),
        description: None,
        is_active: active,
        created_at: created,
        last_used_at: used,
        expires_at: expires,
        scopes,
        owner_id: owner.map(Into::into),
        meta: None,
        previous_secret_expires_at: None,
        rate_limits: None,
        credits: None,
        previous_key_hash: None,
        key_hash: format!("$keygate-hmac-sha256$v=1$hash{n}"),
        key_secret_first: "abcd".into(),
        key_secret_last: "wxyz".into(),
    }
}

fn samples() -> Vec<ApiKey> {
    let recent = t(2024, 1, 1, 0, 0, 0, 123_456);
    let used = Some(t(2025, 6, 1, 12, 0, 0, 0));
    let expires = Some(t(2030, 1, 1, 0, 0, 0, 0));
    let limits = Some(vec![RateLimit::new(
        "burst",
        10,
        std::time::Duration::from_secs(1),
    )]);
    vec![
        ApiKey {
            credits: Some(Credits::new(5).refilled(100, RefillInterval::Daily)),
            rate_limits: limits.clone(),
            ..key(
                1,
                Some("CI Bot"),
                true,
                recent,
                used,
                expires,
                ScopeSet::new(["read", "write", "api:admin"]).unwrap(),
                Some("team-1"),
            )
        },
        key(
            2,
            None,
            false,
            t(1, 1, 1, 0, 0, 0, 0),
            None,
            None,
            ScopeSet::default(),
            None,
        ),
        // The last representable microsecond of year 9999. (A key can also be
        // given a year-10000 expiry: "9999-12-31T23:59:59-01:00" is accepted
        // by POST /api-keys. Such a key is left out here: see README,
        // Findings, for what the stores make of it.)
        ApiKey {
            credits: Some(Credits::new(MAX_CREDITS)),
            ..key(
                3,
                Some("100%_off!\\ [x]"),
                true,
                t(9999, 12, 31, 23, 59, 59, 999_999),
                Some(t(9999, 12, 31, 23, 59, 59, 999_999)),
                Some(t(9999, 12, 31, 23, 59, 59, 999_999)),
                ScopeSet::from_stored(vec!["Legacy Scope".into(), "read".into()]),
                Some("o"),
            )
        },
        ApiKey {
            credits: Some(Credits::new(0)),
            rate_limits: limits,
            ..key(
                4,
                Some("日本 ünï ß"),
                true,
                t(1970, 1, 1, 0, 0, 0, 0),
                Some(t(1969, 12, 31, 23, 59, 59, 999_999)),
                Some(t(1000, 1, 1, 0, 0, 0, 0)),
                ScopeSet::new(["read"]).unwrap(),
                Some("team-2"),
            )
        },
        // Ties with key 1 on every sortable column but id and key id.
        key(
            5,
            Some("ci bot"),
            true,
            recent,
            used,
            expires,
            ScopeSet::new(["write"]).unwrap(),
            Some("team-1"),
        ),
    ]
}

struct World {
    rt: tokio::runtime::Runtime,
    reference: InMemoryRepository,
    sql: SqlRepository,
}

fn build() -> World {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = std::env::var("KEYGATE_FUZZ_STORE_URL").unwrap_or_else(|_| "sqlite::memory:".into());
    let (reference, sql) = rt.block_on(async {
        let sql = SqlRepository::connect(&url).await.expect("connect");
        sql.migrate().await.expect("migrate");
        let audit = Audit {
            actor: "fuzz".into(),
            at: Utc::now(),
            action: AuditAction::Create,
        };
        let existing = sql.find(&ApiKeyFilter::default()).await.expect("list");
        for k in existing {
            sql.delete(&k.id, &audit)
                .await
                .expect("empty the fuzzing database");
        }
        let reference = InMemoryRepository::new();
        for k in samples() {
            reference.insert(&k, &audit).await.expect("insert (memory)");
            sql.insert(&k, &audit).await.expect("insert (sql)");
        }
        (reference, sql)
    });
    World { rt, reference, sql }
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

fn ids(keys: &[ApiKey]) -> Vec<&str> {
    keys.iter().map(|k| k.id.as_str()).collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(filter) = serde_json::from_slice::<ApiKeyFilter>(data) else {
        return;
    };
    WORLD.with(|cell| {
        let mut slot = cell.borrow_mut();
        let world = slot.get_or_insert_with(build);
        world.rt.block_on(async {
            let want = world.reference.find(&filter).await.expect("memory find");
            let got = world
                .sql
                .find(&filter)
                .await
                .unwrap_or_else(|e| panic!("SQL find failed ({e}) for {filter:?}"));
            assert_eq!(ids(&got), ids(&want), "find differs for {filter:?}");
            let want = world.reference.count(&filter).await.expect("memory count");
            let got = world
                .sql
                .count(&filter)
                .await
                .unwrap_or_else(|e| panic!("SQL count failed ({e}) for {filter:?}"));
            assert_eq!(got, want, "count differs for {filter:?}");
        });
    });
});
