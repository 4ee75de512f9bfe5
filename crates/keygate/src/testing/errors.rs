//! One value of every [`Error`] variant, for crates that map errors to
//! something else (HTTP statuses, exit codes) and must cover them all.

use std::time::Duration;

use crate::{Error, FieldError, WindowUsage};

/// One value of each variant of [`Error`], in declaration order. Adding a
/// variant fails to compile here until it is listed, so a mapping tested
/// over this list cannot miss it.
///
/// ```
/// let all = keygate::testing::every_error();
/// assert!(all.iter().any(|e| matches!(e, keygate::Error::Overloaded)));
/// ```
pub fn every_error() -> Vec<Error> {
    let all = vec![
        Error::KeyNotProvided,
        Error::InvalidKey,
        Error::KeyNotFound,
        Error::KeyInactive,
        Error::KeyExpired,
        Error::InvalidScopes {
            required: vec!["read".into(), "write".into()],
            missing: vec!["write".into()],
        },
        Error::RateLimited {
            retry_after: Duration::from_millis(1_500),
            window: WindowUsage {
                name: "minute".into(),
                limit: 100,
                remaining: 0,
                reset_ms: 1_500,
            },
        },
        Error::UsageExceeded {
            retry_after: Some(Duration::from_secs(60)),
        },
        Error::NotFound,
        Error::Validation(vec![FieldError::new("name", "must not be empty")]),
        Error::Conflict("key id taken".into()),
        Error::StoreUnavailable("connection refused".into()),
        Error::Store("constraint violated".into()),
        Error::Hash("bad PHC string".into()),
        Error::Overloaded,
    ];
    for e in &all {
        // No wildcard: a new variant is a compile error until listed above.
        match e {
            Error::KeyNotProvided
            | Error::InvalidKey
            | Error::KeyNotFound
            | Error::KeyInactive
            | Error::KeyExpired
            | Error::InvalidScopes { .. }
            | Error::RateLimited { .. }
            | Error::UsageExceeded { .. }
            | Error::NotFound
            | Error::Validation(_)
            | Error::Conflict(_)
            | Error::StoreUnavailable(_)
            | Error::Store(_)
            | Error::Hash(_)
            | Error::Overloaded => {}
        }
    }
    all
}
