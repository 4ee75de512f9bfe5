//! Cost of `consume_credits`, the store write of every metered request: one
//! caller at a time, and 32 callers at once on the same key (they queue on
//! its row). SQLite is a file in WAL mode; PostgreSQL and MySQL use the
//! test servers (pools of 8 connections, as in the tests).
//!
//! `cargo bench -p keygate-sqlx --bench credits`;
//! `KEYGATE_BENCH_BACKENDS=sqlite,postgres,mysql` chooses the backends
//! (default sqlite,postgres). A backend whose server is absent is skipped
//! with a printed line. For `concurrent_32` one iteration is 32 calls:
//! criterion's time is per batch, its throughput per call.
// criterion_group! declares an undocumented `pub fn`.
#![allow(missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keygate::testing::{at, audit, key};
use keygate::{AuditAction, CreditUse, Credits, RefillInterval, MAX_CREDITS};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

const CALLERS: usize = 32;

/// A store with one key holding more credits than the bench can use, with
/// a daily refill (so the statement evaluates the refill every time).
async fn fixture(backend: &str) -> Option<(support::Store, String)> {
    let store = match backend {
        "sqlite" => support::sqlite().await?,
        "postgres" => support::postgres().await?,
        "mysql" => support::mysql().await?,
        other => panic!("unknown backend {other:?}: use sqlite, postgres or mysql"),
    };
    let mut k = key(Some("metered"), &[]);
    k.credits = Some(
        Credits::new(MAX_CREDITS)
            .refilled(MAX_CREDITS, RefillInterval::Monthly)
            .configured_at(at(0)),
    );
    store
        .repo
        .insert(&k, &audit(AuditAction::Create))
        .await
        .unwrap();
    Some((store, k.id))
}

fn backends() -> Vec<String> {
    std::env::var("KEYGATE_BENCH_BACKENDS")
        .unwrap_or_else(|_| "sqlite,postgres".into())
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect()
}

fn taken(used: CreditUse) {
    assert!(matches!(used, CreditUse::Taken { .. }), "{used:?}");
}

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    for backend in backends() {
        let Some((store, id)) = rt.block_on(fixture(&backend)) else {
            continue;
        };
        let repo = store.repo.clone();
        let mut g = c.benchmark_group(format!("consume_credits/{backend}"));
        g.sample_size(50)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
        g.throughput(Throughput::Elements(1));
        g.bench_function("single", |b| {
            b.to_async(&rt).iter(|| async {
                taken(black_box(
                    repo.consume_credits(&id, 1, at(60)).await.unwrap(),
                ));
            })
        });
        g.throughput(Throughput::Elements(CALLERS as u64));
        g.bench_function("concurrent_32", |b| {
            b.to_async(&rt).iter(|| async {
                let mut calls = JoinSet::new();
                for _ in 0..CALLERS {
                    let (repo, id) = (repo.clone(), id.clone());
                    calls.spawn(async move { repo.consume_credits(&id, 1, at(60)).await });
                }
                while let Some(used) = calls.join_next().await {
                    taken(used.unwrap().unwrap());
                }
            })
        });
        g.finish();
        rt.block_on(async move { drop(store) });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
