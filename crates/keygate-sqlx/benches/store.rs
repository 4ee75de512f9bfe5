//! Store cost at 1 000 and 1 000 000 keys: `verify` (HMAC hasher, cache off,
//! so every call reads the store), `get_by_key_id`, and a scope-filtered
//! search page (plus its exact count), on SQLite and PostgreSQL.
//!
//! `cargo bench -p keygate-sqlx --bench store` runs 1 000 keys;
//! `KEYGATE_BENCH_LARGE=1` adds 1 000 000 (filled with one bulk INSERT:
//! a recursive CTE on SQLite, `generate_series` on PostgreSQL).
//! `KEYGATE_BENCH_BACKENDS=sqlite` limits the backends. PostgreSQL is
//! skipped with a printed line when the server is absent.
// criterion_group! declares an undocumented `pub fn`.
#![allow(missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use keygate::{ApiKeyFilter, ApiKeyService, NewApiKey, Pepper};
use sqlx::Executor;
use tokio::runtime::Runtime;

/// One key in a hundred holds `rare`; the search looks for it.
const SQLITE_FILL: &str = "
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
INSERT INTO api_keys (id, name, description, is_active, expires_at, created_at, last_used_at,
                      key_id, key_hash, key_secret_first, key_secret_last, scopes)
SELECT printf('%032x', i), 'bulk-' || i, NULL, 1, NULL,
       strftime('%Y-%m-%d %H:%M:%S', 1700000000 + i, 'unixepoch') || '.000000', NULL,
       printf('%016x', i), 'bulk$' || i, 'abcd', 'wxyz',
       CASE WHEN i % 100 = 0 THEN '[\"read\", \"rare\"]' ELSE '[\"read\"]' END
FROM n";

const POSTGRES_FILL: &str = "
INSERT INTO api_keys (id, name, description, is_active, expires_at, created_at, last_used_at,
                      key_id, key_hash, key_secret_first, key_secret_last, scopes)
SELECT lpad(to_hex(i), 32, '0'), 'bulk-' || i, NULL, true, NULL,
       timestamptz '2023-11-14 22:13:20+00' + i * interval '1 second', NULL,
       lpad(to_hex(i), 16, '0'), 'bulk$' || i, 'abcd', 'wxyz',
       (CASE WHEN i % 100 = 0 THEN '[\"read\", \"rare\"]' ELSE '[\"read\"]' END)::json
FROM generate_series(1, $1::bigint) AS i";

struct Fixture {
    service: ApiKeyService,
    key: String,
    key_id: String,
    _store: support::Store,
}

async fn fixture(backend: &str, size: i64) -> Option<Fixture> {
    let start = Instant::now();
    let store = match backend {
        "sqlite" => support::sqlite().await?,
        _ => support::postgres().await?,
    };
    let repo = store.sql.clone()?;
    if let Some(lite) = repo.sqlite() {
        sqlx::query(SQLITE_FILL)
            .bind(size)
            .execute(lite.pool())
            .await
            .unwrap();
        lite.pool().execute("ANALYZE").await.unwrap();
    } else if let Some(pg) = repo.postgres() {
        sqlx::query(POSTGRES_FILL)
            .bind(size)
            .execute(pg.pool())
            .await
            .unwrap();
        pg.pool().execute("ANALYZE api_keys").await.unwrap();
    }
    let service = ApiKeyService::builder_shared(store.repo.clone())
        .pepper(Pepper::new("bench-pepper").unwrap())
        .fast_hashing()
        .without_cache()
        .build()
        .unwrap();
    let (entity, key) = service
        .create(NewApiKey::named("real").with_scopes(["read", "rare"]))
        .await
        .unwrap();
    eprintln!(
        "{backend}: {size} keys ready in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Some(Fixture {
        service,
        key: key.expose().to_owned(),
        key_id: entity.key_id,
        _store: store,
    })
}

fn sizes() -> Vec<i64> {
    let large = std::env::var("KEYGATE_BENCH_LARGE").is_ok_and(|v| v == "1" || v == "true");
    if large {
        vec![1_000, 1_000_000]
    } else {
        vec![1_000]
    }
}

/// `KEYGATE_BENCH_BACKENDS=sqlite` (comma-separated) limits the backends.
fn backends() -> Vec<String> {
    std::env::var("KEYGATE_BENCH_BACKENDS")
        .unwrap_or_else(|_| "sqlite,postgres".into())
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect()
}

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let rare = ApiKeyFilter {
        scopes_contain_all: vec!["rare".into()],
        limit: Some(50),
        ..ApiKeyFilter::default()
    };
    for backend in backends() {
        // Every size is ready before measuring, so the sizes of one
        // operation are measured back to back (the machine is shared).
        let fixtures: Vec<(i64, Fixture)> = sizes()
            .into_iter()
            .filter_map(|size| Some((size, rt.block_on(fixture(&backend, size))?)))
            .collect();
        let mut g = c.benchmark_group(backend.as_str());
        g.sample_size(50)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        for (size, f) in &fixtures {
            g.bench_function(BenchmarkId::new("verify", size), |b| {
                b.to_async(&rt).iter(|| async {
                    black_box(f.service.verify(&f.key, &["read"]).await.unwrap());
                })
            });
        }
        for (size, f) in &fixtures {
            g.bench_function(BenchmarkId::new("get_by_key_id", size), |b| {
                b.to_async(&rt).iter(|| async {
                    black_box(
                        f.service
                            .repository()
                            .get_by_key_id(&f.key_id)
                            .await
                            .unwrap(),
                    );
                })
            });
        }
        for (size, f) in &fixtures {
            g.bench_function(BenchmarkId::new("search_page_rare_50", size), |b| {
                b.to_async(&rt).iter(|| async {
                    let page = f.service.find(&rare).await.unwrap();
                    assert_eq!(page.len(), 50.min(*size as usize / 100 + 1));
                    black_box(page);
                })
            });
        }
        g.sample_size(10);
        for (size, f) in &fixtures {
            g.bench_function(BenchmarkId::new("search_count_rare", size), |b| {
                b.to_async(&rt).iter(|| async {
                    black_box(f.service.count(&rare).await.unwrap());
                })
            });
        }
        g.finish();
        rt.block_on(async move { drop(fixtures) });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
