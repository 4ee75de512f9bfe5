//! Instruction-count probe for the cold verification path on SQLite: N
//! store reads by key id (`get`) or N uncached HMAC verifications
//! (`verify`). Wall-clock numbers swing ±15 % on a shared machine;
//! instruction counts do not:
//!
//! ```sh
//! cargo build --release --example read_probe
//! for n in 0 1000; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/read_probe $n get 2>&1 | grep Collected; done
//! # (count at 1000 − count at 0) / 1000 = instructions per read
//! ```
use keygate::prelude::*;
use keygate::{ApiKeyService, NewApiKey, Pepper};
use keygate_sqlx::SqlRepository;
use std::time::Duration;

fn main() {
    let n: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let mode = std::env::args().nth(2).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let path = std::env::temp_dir().join(format!("kg-probe-{}.db", std::process::id()));
        let repo = SqlRepository::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        repo.migrate().await.unwrap();
        let service = ApiKeyService::builder(repo.clone())
            .pepper(Pepper::new("p").unwrap())
            .fast_hashing()
            .without_cache()
            .touch_interval(Duration::from_secs(3600))
            .build()
            .unwrap();
        let mut last = None;
        for i in 0..200 {
            last = Some(
                service
                    .create(NewApiKey::named(format!("k{i}")).with_scopes(["read"]))
                    .await
                    .unwrap(),
            );
        }
        let (entity, key) = last.unwrap();
        // Warm the statement cache.
        for _ in 0..10 {
            service.verify(key.expose(), &["read"]).await.unwrap();
            repo.get_by_key_id(&entity.key_id).await.unwrap();
        }
        for _ in 0..n {
            if mode == "get" {
                std::hint::black_box(repo.get_by_key_id(&entity.key_id).await.unwrap());
            } else {
                std::hint::black_box(service.verify(key.expose(), &["read"]).await.unwrap());
            }
        }
        repo.close().await;
        let _ = std::fs::remove_file(&path);
    });
}
