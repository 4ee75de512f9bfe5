//! Scope parsing: `is_valid_scope`, `ScopeSet::new`, `ScopeSet::from_stored`.
//!
//! Input: UTF-8 text (invalid sequences become U+FFFD), one scope per line
//! (`\n`); an empty line is the empty scope.
//!
//! Invariants checked:
//! - nothing panics;
//! - `is_valid_scope` is exactly `^[a-z][a-z0-9:_-]*$` and at most 64 bytes;
//! - `ScopeSet::new` is Ok exactly when every scope is valid; it then holds
//!   each distinct scope once, in the order first given, and
//!   `contains`/`contains_all` agree; the error names every bad scope;
//! - `ScopeSet::from_stored` keeps every distinct string (valid or not)
//!   once, in first-seen order;
//! - a valid set survives a JSON round trip, and JSON decoding of a list
//!   accepts exactly what `ScopeSet::new` accepts.
#![no_main]

use keygate::{is_valid_scope, Error, ScopeSet};
use libfuzzer_sys::fuzz_target;

fn reference_valid(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b[1..].iter().all(|&c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b':' | b'_' | b'-')
        })
}

fn dedup(items: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in items {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let items: Vec<String> = text.split('\n').map(str::to_owned).collect();

    for s in &items {
        assert_eq!(
            is_valid_scope(s),
            reference_valid(s),
            "is_valid_scope({s:?})"
        );
    }
    let expected = dedup(&items);
    let bad: Vec<&String> = items.iter().filter(|s| !reference_valid(s)).collect();

    match ScopeSet::new(items.iter().cloned()) {
        Ok(set) => {
            assert!(bad.is_empty(), "accepted {bad:?}");
            assert_eq!(set.as_slice(), expected.as_slice());
            assert_eq!(set.len(), expected.len());
            assert_eq!(set.is_empty(), expected.is_empty());
            assert!(set.contains_all(&items));
            assert!(items.iter().all(|s| set.contains(s)));
            assert!(set.iter().eq(expected.iter().map(String::as_str)));
            let json = serde_json::to_string(&set).unwrap();
            let back: ScopeSet = serde_json::from_str(&json).unwrap();
            assert_eq!(back, set);
            assert_eq!(Vec::<String>::from(set.clone()), expected);
        }
        Err(Error::Validation(errors)) => {
            assert!(!bad.is_empty(), "refused only valid scopes");
            // One error per bad scope (duplicates of a bad one included).
            assert_eq!(errors.len(), bad.len());
            assert!(errors.iter().all(|e| e.field == "scopes"));
            let _ = Error::Validation(errors).to_string();
        }
        Err(other) => panic!("ScopeSet::new answered {other:?}"),
    }

    // JSON decoding goes through the same validation.
    let json_list = serde_json::to_string(&items).unwrap();
    let decoded = serde_json::from_str::<ScopeSet>(&json_list);
    assert_eq!(decoded.is_ok(), bad.is_empty());

    let stored = ScopeSet::from_stored(items.clone());
    assert_eq!(stored.as_slice(), expected.as_slice());
    assert!(items.iter().all(|s| stored.contains(s)));
    // A stored set holding an invalid scope can still be checked against
    // valid requirements without surprises.
    let required: Vec<&str> = items
        .iter()
        .map(String::as_str)
        .filter(|s| reference_valid(s))
        .collect();
    assert!(stored.contains_all(&required));
});
