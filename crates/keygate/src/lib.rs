//! # keygate
//!
//! API key management for Rust services: issue keys, store only their
//! hashes, verify them on every request against per-route scopes.
//!
//! This crate is framework- and storage-agnostic. It holds the key format,
//! the hashers, the [`ApiKey`] entity, the storage contract ([`KeyStore`],
//! [`KeySearch`], [`AuditLog`]; together [`Repository`]) with an
//! [`InMemoryRepository`], the audit log types, the verification cache and
//! [`ApiKeyService`]. With the `testing` feature, the `testing` module holds the
//! conformance suite every store runs. [`telemetry`] lists the metrics,
//! log fields and spans a service emits. The `clap` feature derives
//! `clap::ValueEnum` on [`AuditAction`] and [`OrderBy`] (the names the
//! store and the HTTP API use), for CLIs; the `utoipa` feature derives
//! `utoipa::ToSchema` on those two and [`RefillInterval`], for OpenAPI
//! documents.
//! SQL stores live in `keygate-sqlx`, HTTP in `keygate-axum`.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use keygate::{ApiKeyService, Error, InMemoryRepository, NewApiKey, Pepper};
//!
//! let service = ApiKeyService::builder(InMemoryRepository::new())
//!     .pepper(Pepper::new("load-me-from-a-secret-store").unwrap())
//!     .build()
//!     .unwrap();
//! let (_entity, key) = service.create(NewApiKey::named("writer").with_scopes(["write"])).await.unwrap();
//! let verified = service.verify(key.expose(), &["write"]).await.unwrap();
//! assert_eq!(verified.name.as_deref(), Some("writer"));
//! assert!(matches!(service.verify(key.expose(), &["read"]).await, Err(Error::InvalidScopes { .. })));
//! # });
//! ```
#![forbid(unsafe_code)]

mod audit;
mod batch;
mod builder;
mod cache;
mod change;
mod clock;
mod credit_queue;
mod entity;
mod error;
mod filter;
mod hash;
mod hash_pool;
mod invalidation;
mod key;
mod limits;
mod memory;
mod rate_syntax;
mod ratelimit;
mod repository;
mod scope;
mod service;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
mod touch;
mod verify;

pub use audit::{Audit, AuditAction, AuditEvent, EventFilter};
pub use builder::{DelayRange, ServiceBuilder};
pub use cache::{digest as key_digest, CacheConfig, KeyDigest};
pub use change::{KeyChange, NewSecret, HIDDEN};
pub use clock::{Clock, ManualClock, SystemClock};
pub use entity::MAX_SCOPES_PER_LIST;
pub use entity::{
    new_entity_id, now_micros, truncate_micros, ApiKey, ApiKeyUpdate, Meta, NewApiKey,
    DESCRIPTION_MAX, META_MAX_BYTES, NAME_MAX, OWNER_ID_MAX,
};
pub use error::{Error, FieldError, StoreError};
pub use filter::{fold_case, ApiKeyFilter, OrderBy};
pub use hash::{HashAlgorithm, KeyHasher, Pepper, StoredKind, PEPPER_ENV};
pub use invalidation::{ChangePublisher, Invalidator};
pub use key::{KeyFormat, KeyId, ParsedKey, PlainKey, Secret, KEY_ID_LEN, SECRET_LEN};
pub use limits::{
    CreditChange, CreditUse, Credits, RateDecision, RateLimit, RefillInterval, Usage, WindowUsage,
    MAX_COST, MAX_CREDITS, MAX_RATE_LIMITS, MAX_WINDOW_LIMIT, MAX_WINDOW_MS, MIN_WINDOW_MS,
};
pub use memory::InMemoryRepository;
pub use rate_syntax::{format_window_ms, ParseRateLimitError};
pub use ratelimit::{LimiterError, LocalRateLimiter, SharedRateLimiter};
pub use repository::{AuditLog, KeySearch, KeyStore, Repository};
pub use scope::{is_valid_scope, ScopeSet};
pub use service::{ApiKeyService, HashingStats, Verified, ACTOR_MAX, DEFAULT_ACTOR, MAX_GRACE};
pub use telemetry::{capture_verification, Outcome, Verification};

/// The storage traits, to call a store's methods directly:
/// `use keygate::prelude::*;`.
pub mod prelude {
    pub use crate::repository::{AuditLog, KeySearch, KeyStore, Repository};
}

/// The flag values a CLI gets from the `clap` feature are the names the
/// store, the audit log and the HTTP API use.
#[cfg(all(test, feature = "clap"))]
mod clap_names {
    use clap::ValueEnum;

    use crate::{AuditAction, OrderBy};

    #[test]
    fn flag_values_are_the_stored_names() {
        assert_eq!(AuditAction::value_variants(), AuditAction::ALL);
        for action in AuditAction::ALL {
            let value = action.to_possible_value().unwrap();
            assert_eq!(value.get_name(), action.as_str());
        }
        assert_eq!(OrderBy::value_variants(), OrderBy::ALL);
        for column in OrderBy::ALL {
            let value = column.to_possible_value().unwrap();
            assert_eq!(value.get_name(), column.as_str());
        }
    }
}
