//! Key parsing: `KeyFormat::default().parse`, `KeyFormat::new(prefix, sep)`
//! with arbitrary parts, and the format/parse round trip.
//!
//! Input (UTF-8; other bytes are skipped), split on NUL bytes:
//! - `raw`                          → the default format parses `raw`
//! - `prefix \0 sep \0 raw`         → `KeyFormat::new(prefix, sep)` parses `raw`
//! - `prefix \0 sep \0 id \0 secret` → a key formatted from `id` and `secret`
//!   (when valid) must parse back to them
//!
//! Invariants checked:
//! - nothing panics;
//! - blank input is `KeyNotProvided`, never `Ok`;
//! - a successful parse returns a 16-lowercase-hex key id and a non-empty,
//!   at most 256-character alphanumeric secret, and
//!   `prefix + sep + key_id + sep + secret` is exactly the input (and, for
//!   secrets of 16+ characters, `KeyFormat::format` writes that same string);
//! - `KeyFormat::new("ak_v1", "-")` parses exactly like the default format;
//! - a formatted key always parses back to its own parts, and the default
//!   format never accepts a key written with another (valid) format.
#![no_main]

use keygate::{Error, KeyFormat, KeyId, Secret, KEY_ID_LEN};
use libfuzzer_sys::fuzz_target;

const MAX_SECRET_LEN: usize = 256;

fn check_parse(format: &KeyFormat, raw: &str) {
    match format.parse(raw) {
        Ok(parsed) => {
            assert!(!raw.trim().is_empty(), "blank input parsed");
            assert_eq!(parsed.key_id.len(), KEY_ID_LEN);
            assert!(
                parsed
                    .key_id
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                "key id {:?}",
                parsed.key_id
            );
            assert!(KeyId::parse(parsed.key_id).is_ok());
            assert!(!parsed.secret.is_empty() && parsed.secret.len() <= MAX_SECRET_LEN);
            assert!(parsed.secret.bytes().all(|b| b.is_ascii_alphanumeric()));
            // Re-formatting gives back exactly the input.
            let sep = format.separator();
            let rebuilt = format!(
                "{}{sep}{}{sep}{}",
                format.prefix(),
                parsed.key_id,
                parsed.secret
            );
            assert_eq!(rebuilt, raw, "parse/format round trip");
            if let (Ok(id), Ok(secret)) =
                (KeyId::parse(parsed.key_id), Secret::parse(parsed.secret))
            {
                assert_eq!(format.format(&id, &secret).expose(), raw);
            }
        }
        Err(Error::KeyNotProvided) => assert!(raw.trim().is_empty(), "{raw:?}"),
        Err(Error::InvalidKey) => assert!(!raw.trim().is_empty(), "{raw:?}"),
        Err(other) => panic!("parse answered {other:?} for {raw:?}"),
    }
}

fn outcome(r: &Result<keygate::ParsedKey<'_>, Error>) -> Option<(String, String)> {
    r.as_ref()
        .ok()
        .map(|p| (p.key_id.to_owned(), p.secret.to_owned()))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parts: Vec<&str> = text.splitn(4, '\0').collect();
    match parts.as_slice() {
        [raw] => {
            let default = KeyFormat::default();
            check_parse(&default, raw);
            let explicit = KeyFormat::new("ak_v1", "-").expect("the default parts are valid");
            assert_eq!(explicit, default);
            let (a, b) = (default.parse(raw), explicit.parse(raw));
            assert_eq!(outcome(&a), outcome(&b));
            assert_eq!(a.is_err(), b.is_err());
        }
        [prefix, sep] => {
            // Only the constructor: whatever it accepts must obey its documented rules.
            if let Ok(format) = KeyFormat::new(*prefix, *sep) {
                check_rules(&format);
            }
        }
        [prefix, sep, raw] => {
            if let Ok(format) = KeyFormat::new(*prefix, *sep) {
                check_rules(&format);
                check_parse(&format, raw);
            }
        }
        [prefix, sep, id, secret] => {
            let Ok(format) = KeyFormat::new(*prefix, *sep) else {
                return;
            };
            check_rules(&format);
            let (Ok(id), Ok(secret)) = (KeyId::parse(id), Secret::parse(secret)) else {
                return;
            };
            let key = format.format(&id, &secret);
            let parsed = format.parse(key.expose()).expect("a formatted key parses");
            assert_eq!(parsed.key_id, id.as_str());
            assert_eq!(parsed.secret, secret.expose());
            check_parse(&format, key.expose());
            let default = KeyFormat::default();
            if format != default {
                // The default format accepts this key only when it reads the very same parts
                // (e.g. prefix "ak_v1-x" is not a different format for the parser's purposes,
                // but then the key id would have to start with "x": impossible).
                if let Ok(other) = default.parse(key.expose()) {
                    panic!(
                        "default format accepted a key of format {format:?}: {:?}",
                        other
                    );
                }
            }
        }
        _ => unreachable!(),
    }
});

/// What `KeyFormat::new` documents: a non-empty separator without ASCII
/// letters or digits; a non-empty prefix without whitespace that does not
/// contain the separator.
fn check_rules(format: &KeyFormat) {
    let (prefix, sep) = (format.prefix(), format.separator());
    assert!(!sep.is_empty());
    assert!(!sep.chars().any(|c| c.is_ascii_alphanumeric()), "{sep:?}");
    assert!(!prefix.is_empty());
    assert!(!prefix.chars().any(char::is_whitespace), "{prefix:?}");
    assert!(!prefix.contains(sep), "{prefix:?} contains {sep:?}");
}
