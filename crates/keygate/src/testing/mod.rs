//! The conformance suite: the storage contract, checked the same way
//! against every store (feature `testing`).
//!
//! Each check takes a fresh, empty store. A store crate runs them all with
//! one macro call from its own tests, giving it a set-up function that
//! returns `Option<impl StoreFixture>` (`None` skips, e.g. when a database
//! server is absent on a developer machine):
//!
//! ```ignore
//! // tests/conformance.rs of a store crate (needs tokio with `macros` and
//! // `rt-multi-thread` as a dev-dependency)
//! async fn fresh() -> Option<std::sync::Arc<dyn keygate::Repository>> {
//!     Some(std::sync::Arc::new(MyStore::connect_fresh().await))
//! }
//! keygate::conformance_tests!(fresh);
//! ```
//!
//! The checks cover look-ups, conflicts, `touch`, every filter against the
//! reference semantics, the audit log, and races: six writers against a
//! deactivation, a rename against a scope change, a rotation against a
//! deactivation — each must leave every change in place; and usage
//! limits: credits taken atomically by 200 racing callers, refills at
//! interval boundaries.

mod audit;
mod errors;
mod filters;
mod limits;
mod races;
mod service;
mod store;

pub use audit::*;
pub use errors::*;
pub use filters::*;
pub use limits::*;
pub use races::*;
pub use service::*;
pub use store::*;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use crate::{
    new_entity_id, ApiKey, ApiKeyFilter, ApiKeyService, Audit, AuditAction, KeyChange, Pepper,
    Repository, ScopeSet, StoreError,
};

/// What a set-up function hands the suite: a store, plus whatever must
/// live as long as the test (a temporary directory, a schema to drop).
pub trait StoreFixture: Send + 'static {
    /// The store under test.
    fn repo(&self) -> Repo;
}

impl StoreFixture for Repo {
    fn repo(&self) -> Repo {
        self.clone()
    }
}

/// One `#[tokio::test]` per check of the suite, each on a fresh store from
/// `$setup` (an `async fn() -> Option<impl StoreFixture>`; `None` skips).
/// The calling crate needs tokio with `macros` and `rt-multi-thread`.
#[macro_export]
macro_rules! conformance_tests {
    ($setup:path) => {
        $crate::conformance_tests!(
            $setup;
            crud_round_trip,
            optional_and_unicode_fields_round_trip,
            duplicate_key_id_is_conflict,
            duplicate_key_hash_is_conflict,
            rotation_to_a_taken_hash_is_conflict,
            changes_touch_only_their_fields,
            touch_only_moves_forward,
            ping_answers,
            every_filter_field_matches_reference,
            name_contains_is_literal_and_case_insensitive,
            name_contains_folds_unicode,
            ordering_every_column_both_directions,
            paging_is_stable_and_complete,
            scope_filters_run_before_paging,
            empty_scopes_any_is_no_constraint,
            owner_and_key_id_filters_are_exact,
            events_are_written_with_their_changes,
            events_filter_order_and_page,
            events_survive_deletion,
            failed_changes_write_no_event,
            long_actor_names_are_kept_or_cut,
            verify_outcomes,
            manage_through_service,
            rotation_through_service,
            concurrent_creates_and_verifies,
            race_writers_against_deactivate,
            race_rename_against_scope_change,
            race_rotate_against_deactivate,
            limits_round_trip,
            consume_credits_takes_exactly,
            credits_refill_at_interval_boundaries,
            race_consume_credits,
            race_add_credits_against_use,
            limit_filters_match_reference,
            metered_verify_through_service,
            consume_credits_batch_grants_in_order,
            race_credit_batches,
        );
    };
    ($setup:path; $($check:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some(store) = $setup().await else { return };
                let repo = $crate::testing::StoreFixture::repo(&store);
                $crate::testing::$check(repo).await;
            }
        )+
    };
}

/// The store under test.
pub type Repo = Arc<dyn Repository>;

/// The pepper of [`service`].
pub const PEPPER: &str = "conformance-pepper";

/// A service over `repo`: fast hashing, explicit pepper, no cache, every
/// use written at once.
pub fn service(repo: Repo) -> ApiKeyService {
    ApiKeyService::builder_shared(repo)
        .pepper(Pepper::new(PEPPER).expect("pepper"))
        .fast_hashing()
        .without_cache()
        .touch_interval(Duration::ZERO)
        .build()
        .expect("service")
}

/// A fixed instant the test data is laid out around.
pub fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap()
}

/// `base()` plus some seconds.
pub fn at(seconds: i64) -> DateTime<Utc> {
    base() + TimeDelta::seconds(seconds)
}

/// An audit context for changes made directly on a store.
pub fn audit(action: AuditAction) -> Audit {
    Audit {
        actor: "conformance".into(),
        at: crate::now_micros(),
        action,
    }
}

/// Inserts through the store, as the service would.
pub async fn put(repo: &Repo, key: &ApiKey) -> Result<(), StoreError> {
    repo.insert(key, &audit(AuditAction::Create)).await
}

/// Applies a change through the store, as the service would.
pub async fn change(
    repo: &Repo,
    id: &str,
    change: &KeyChange,
) -> Result<Option<ApiKey>, StoreError> {
    repo.update(id, change, &audit(AuditAction::Update)).await
}

/// A valid entity with a unique id, key id and hash.
pub fn key(name: Option<&str>, scopes: &[&str]) -> ApiKey {
    let id = new_entity_id();
    ApiKey {
        key_id: id[..16].to_owned(),
        key_hash: format!("$keygate-hmac-sha256$v=1${id}"),
        id,
        name: name.map(str::to_owned),
        description: None,
        is_active: true,
        created_at: base(),
        last_used_at: None,
        expires_at: None,
        scopes: ScopeSet::new(scopes.iter().copied()).unwrap(),
        owner_id: None,
        meta: None,
        previous_secret_expires_at: None,
        rate_limits: None,
        credits: None,
        previous_key_hash: None,
        key_secret_first: "abcd".into(),
        key_secret_last: "wxyz".into(),
    }
}

/// Every stored key, newest first.
pub async fn all(repo: &Repo) -> Vec<ApiKey> {
    repo.find(&ApiKeyFilter::default()).await.unwrap()
}
