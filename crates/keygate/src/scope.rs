//! Scopes: permission strings such as `read` or `api:write`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldError};

/// True when `scope` matches `^[a-z][a-z0-9:_\-]*$` and is at most 64 bytes.
pub fn is_valid_scope(scope: &str) -> bool {
    let mut bytes = scope.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && scope.len() <= 64
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b':' | b'_' | b'-'))
}

/// A validated, duplicate-free list of scopes, in the order first given.
///
/// ```
/// use keygate::ScopeSet;
/// let scopes = ScopeSet::new(["read", "api:write", "read"]).unwrap();
/// assert_eq!(scopes.as_slice(), ["read", "api:write"]);
/// assert!(ScopeSet::new(["Read"]).is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct ScopeSet(Vec<String>);

impl ScopeSet {
    /// Validates every scope; the error names each bad one.
    pub fn new<I, S>(scopes: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut out: Vec<String> = Vec::new();
        let mut errors = Vec::new();
        for scope in scopes {
            let scope = scope.into();
            if !is_valid_scope(&scope) {
                errors.push(FieldError::new(
                    "scopes",
                    format!("invalid scope {scope:?}: must match ^[a-z][a-z0-9:_-]*$ (at most 64 characters)"),
                ));
            } else if !out.contains(&scope) {
                out.push(scope);
            }
        }
        if errors.is_empty() {
            Ok(Self(out))
        } else {
            Err(Error::Validation(errors))
        }
    }

    /// Scopes read back from a store, kept as they are (duplicates dropped,
    /// not validated): a row written by another tool (e.g. the Python
    /// library) with a scope keygate would refuse still loads. Such a scope
    /// can never satisfy a route, whose scopes are always validated.
    pub fn from_stored(scopes: Vec<String>) -> Self {
        let mut out: Vec<String> = Vec::with_capacity(scopes.len());
        for scope in scopes {
            if !out.contains(&scope) {
                out.push(scope);
            }
        }
        Self(out)
    }

    /// True when the set holds `scope`.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s == scope)
    }

    /// True when the set holds every scope of `required`.
    pub fn contains_all<S: AsRef<str>>(&self, required: &[S]) -> bool {
        required.iter().all(|r| self.contains(r.as_ref()))
    }

    /// The scopes, in order.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Number of scopes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no scopes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the scopes.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl TryFrom<Vec<String>> for ScopeSet {
    type Error = Error;
    fn try_from(v: Vec<String>) -> Result<Self, Error> {
        Self::new(v)
    }
}

impl From<ScopeSet> for Vec<String> {
    fn from(s: ScopeSet) -> Self {
        s.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern() {
        for ok in ["read", "api:write", "a", "x-y_z:1"] {
            assert!(is_valid_scope(ok), "{ok}");
        }
        for bad in [
            "",
            "Read",
            "1read",
            ":read",
            "re ad",
            "read;",
            "é",
            "read'--",
            &"a".repeat(65),
        ] {
            assert!(!is_valid_scope(bad), "{bad}");
        }
    }

    #[test]
    fn every_bad_scope_is_named() {
        let Err(Error::Validation(errors)) = ScopeSet::new(["ok", "BAD", "also bad"]) else {
            panic!("expected validation error");
        };
        assert_eq!(errors.len(), 2);
        assert!(errors[0].message.contains("BAD"));
    }

    #[test]
    fn stored_scopes_load_as_they_are() {
        let s = ScopeSet::from_stored(vec!["Legacy Scope".into(), "read".into(), "read".into()]);
        assert_eq!(s.as_slice(), ["Legacy Scope", "read"]);
    }

    #[test]
    fn contains_all_requires_every_scope() {
        let s = ScopeSet::new(["read"]).unwrap();
        assert!(s.contains_all(&["read"]));
        assert!(!s.contains_all(&["read", "write"]));
        assert!(s.contains_all::<&str>(&[]));
    }
}
