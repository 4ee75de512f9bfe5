//! The conformance suite against the in-memory store.

use std::sync::Arc;

use keygate::testing::Repo;
use keygate::InMemoryRepository;

async fn memory() -> Option<Repo> {
    Some(Arc::new(InMemoryRepository::new()))
}

keygate::conformance_tests!(memory);
