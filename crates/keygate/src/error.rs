//! The errors of keygate. HTTP status codes for them are chosen in exactly one
//! place, in `keygate-axum`.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::limits::WindowUsage;

/// A validation problem with one input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field, named as in the JSON bodies (e.g. `name`, `scopes`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Everything that can go wrong in keygate. Messages never contain a key,
/// a secret, a hash or a pepper.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No key was presented (empty or blank).
    #[error("API key missing")]
    KeyNotProvided,
    /// The key is malformed, has the wrong prefix, or its secret does not match.
    #[error("API key invalid")]
    InvalidKey,
    /// The key is well formed but no key with its key id exists.
    #[error("API key not found")]
    KeyNotFound,
    /// The key exists and matches but is deactivated.
    #[error("API key inactive")]
    KeyInactive,
    /// The key exists and matches but its expiry has passed.
    #[error("API key expired")]
    KeyExpired,
    /// The key lacks at least one of the required scopes.
    #[error("API key missing required scopes {}", quote_list(.required))]
    InvalidScopes {
        /// Every scope the caller required, in the order it declared them.
        required: Vec<String>,
        /// The required scopes the key does not hold.
        missing: Vec<String>,
    },
    /// A rate-limit window of the key has no room for this request
    /// (HTTP 429). Nothing was taken from any window or from the credits.
    #[error("API key rate limit exceeded")]
    RateLimited {
        /// When to try again: until the full window closes (at least 1 s
        /// when rounded up for `Retry-After`).
        retry_after: Duration,
        /// The full window (`remaining` as it stands).
        window: WindowUsage,
    },
    /// The key's credits are used up (HTTP 429). Nothing was taken from the
    /// rate-limit windows.
    #[error("API key usage exceeded")]
    UsageExceeded {
        /// Until the next refill, when one is scheduled.
        retry_after: Option<Duration>,
    },
    /// No API key entity with this id.
    #[error("API key not found")]
    NotFound,
    /// Input failed validation; one entry per bad field.
    #[error("validation failed: {}", join(.0))]
    Validation(Vec<FieldError>),
    /// A key with the same key id (or hash) already exists.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The store could not be reached or timed out.
    #[error("store unavailable: {0}")]
    StoreUnavailable(String),
    /// The store answered with an unexpected failure.
    #[error("store error: {0}")]
    Store(String),
    /// A stored hash could not be read, or hashing failed.
    #[error("hashing error: {0}")]
    Hash(String),
    /// Too many keys are waiting to be hashed; the request was refused
    /// without queueing. Try again shortly (HTTP 503 with `Retry-After`).
    #[error("server busy: too many keys waiting to be checked")]
    Overloaded,
}

impl Error {
    /// A validation error for a single field.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    /// True for the errors a caller gets for a bad or refused key.
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self,
            Self::KeyNotProvided
                | Self::InvalidKey
                | Self::KeyNotFound
                | Self::KeyInactive
                | Self::KeyExpired
                | Self::InvalidScopes { .. }
        )
    }
}

fn quote_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a [`Repository`](crate::Repository) reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Unreachable, timed out, pool closed.
    #[error("{0}")]
    Unavailable(String),
    /// A unique constraint (key id, hash, id) was violated.
    #[error("{0}")]
    Conflict(String),
    /// A stored row could not be decoded.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The store was set up wrongly: a malformed URL, an unknown scheme.
    /// Retrying cannot help; the configuration must change.
    #[error("invalid store configuration: {0}")]
    InvalidConfig(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::StoreUnavailable(m),
            StoreError::Conflict(m) => Self::Conflict(m),
            other => Self::Store(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_message_lists_all_required_in_order() {
        let e = Error::InvalidScopes {
            required: vec!["read".into(), "write".into()],
            missing: vec!["write".into()],
        };
        assert_eq!(
            e.to_string(),
            "API key missing required scopes 'read', 'write'"
        );
    }
}
