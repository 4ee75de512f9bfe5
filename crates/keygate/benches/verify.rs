//! Verification cost on the in-memory store, per hasher, with and without the
//! cache, plus parsing. `baseline/*` rows are measured in the same run so the
//! others can be read as ratios on a noisy machine. `verify/cached` runs
//! without a metrics recorder (the library default), `verify/cached_metrics`
//! with the Prometheus recorder of `keygate serve`
//! (`keygate::telemetry::prometheus`).
//!
//! `cargo bench -p keygate --bench verify`
// criterion_group! declares an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use keygate::{
    key_digest, ApiKeyService, HashAlgorithm, InMemoryRepository, KeyFormat, NewApiKey, Pepper,
    Repository,
};
use tokio::runtime::Runtime;

fn service(rt: &Runtime, algorithm: HashAlgorithm, cache: bool) -> (ApiKeyService, String) {
    let repo: Arc<dyn Repository> = Arc::new(InMemoryRepository::new());
    let builder = |algorithm| {
        ApiKeyService::builder_shared(repo.clone())
            .pepper(Pepper::new("bench-pepper").unwrap())
            .algorithm(algorithm)
    };
    let filler = builder(HashAlgorithm::HmacSha256).build().unwrap();
    let service = if cache {
        builder(algorithm)
    } else {
        builder(algorithm).without_cache()
    }
    .build()
    .unwrap();
    let key = rt.block_on(async {
        // Other keys, so the store is not trivially small.
        for i in 0..1000 {
            filler
                .create(NewApiKey::named(format!("filler{i}")))
                .await
                .unwrap();
        }
        let (_, key) = service
            .create(NewApiKey::named("bench").with_scopes(["read", "write"]))
            .await
            .unwrap();
        key.expose().to_owned()
    });
    (service, key)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let format = KeyFormat::default();
    let sample = format!("ak_v1-7a74caa323a5410d-{}", "a".repeat(64));

    let mut g = c.benchmark_group("baseline");
    g.bench_function("string_compare", |b| {
        let expected = sample.clone();
        b.iter(|| black_box(black_box(sample.as_str()) == expected.as_str()))
    });
    g.bench_function("sha256_of_key", |b| {
        b.iter(|| black_box(key_digest(black_box(&sample))))
    });
    g.finish();

    c.bench_function("parse", |b| {
        b.iter(|| black_box(format.parse(black_box(&sample)).is_ok()))
    });

    let mut g = c.benchmark_group("verify");
    let hmac = HashAlgorithm::HmacSha256;
    for (label, algorithm, cache) in [
        ("cached", hmac, true),
        ("hmac_uncached", hmac, false),
        (
            "argon2_default_uncached",
            HashAlgorithm::ARGON2_DEFAULT,
            false,
        ),
        (
            "argon2_python_params_uncached",
            HashAlgorithm::Argon2 {
                m_cost: 65536,
                t_cost: 3,
                p_cost: 4,
            },
            false,
        ),
        ("bcrypt12_uncached", HashAlgorithm::BCRYPT_DEFAULT, false),
    ] {
        if !cache && !matches!(algorithm, HashAlgorithm::HmacSha256) {
            g.sample_size(10).measurement_time(Duration::from_secs(5));
        }
        let (service, key) = service(&rt, algorithm, cache);
        g.bench_function(label, |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(service.verify(&key, &["read"]).await.unwrap()) })
        });
    }
    // Services take their metric handles when built: this one records into
    // the Prometheus recorder of `keygate serve`, whose upkeep runs every 5 s.
    let prometheus = keygate::telemetry::prometheus::Prometheus::install().unwrap();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(5));
        prometheus.run_upkeep();
    });
    let (service, key) = service(&rt, hmac, true);
    g.sample_size(100).measurement_time(Duration::from_secs(5));
    g.bench_function("cached_metrics", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(service.verify(&key, &["read"]).await.unwrap()) })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
