//! Key format (`{prefix}{sep}{key_id}{sep}{secret}`), generation and parsing.

use std::fmt;

use rand::distributions::{Alphanumeric, DistString};
use rand::rngs::OsRng;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::error::{Error, FieldError};

/// Length of a generated key id, in hex characters.
pub const KEY_ID_LEN: usize = 16;
/// Length of a generated secret, in characters of `[A-Za-z0-9]`.
pub const SECRET_LEN: usize = 64;
/// Longest secret accepted when parsing. Longer input is refused before any
/// hashing so that a huge header cannot buy expensive work.
pub(crate) const MAX_SECRET_LEN: usize = 256;
/// Shortest explicit secret accepted at creation.
pub(crate) const MIN_SECRET_LEN: usize = 16;

/// The public, random identifier in the middle of a key. Used for look-ups.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// A fresh random key id: 16 lowercase hex characters from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_ID_LEN / 2];
        OsRng.fill_bytes(&mut bytes);
        Self(hex::encode(bytes))
    }

    /// Validates an explicit key id (16 lowercase hex characters).
    pub fn parse(raw: &str) -> Result<Self, Error> {
        if is_key_id(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Error::validation(
                "key_id",
                "must be 16 lowercase hexadecimal characters",
            ))
        }
    }

    /// The key id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A key id read from the store, as it is (rows another tool wrote may
    /// use another shape; the key formats with it all the same).
    pub(crate) fn from_stored(stored: &str) -> Self {
        Self(stored.to_owned())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KeyId").field(&self.0).finish()
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which bytes may appear in a key id (lowercase hex) and in a secret
/// (ASCII letters and digits): one table look-up per byte, no early exit
/// (so the loop is branch-free; keys are short).
const fn byte_classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_digit() || matches!(c, b'a'..=b'f') {
            table[b] |= HEX;
        }
        if c.is_ascii_alphanumeric() {
            table[b] |= ALNUM;
        }
        b += 1;
    }
    table
}
const HEX: u8 = 1;
const ALNUM: u8 = 2;
static BYTE_CLASSES: [u8; 256] = byte_classes();

fn all_in(raw: &str, class: u8) -> bool {
    raw.bytes()
        .fold(class, |acc, b| acc & BYTE_CLASSES[b as usize])
        == class
}

fn is_key_id(raw: &str) -> bool {
    raw.len() == KEY_ID_LEN && all_in(raw, HEX)
}

fn is_secret(raw: &str) -> bool {
    !raw.is_empty() && raw.len() <= MAX_SECRET_LEN && all_in(raw, ALNUM)
}

/// The secret part of a key. Zeroized on drop; `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// A fresh random secret: 64 characters of `[A-Za-z0-9]` from the OS CSPRNG.
    pub fn generate() -> Self {
        Self(Zeroizing::new(
            Alphanumeric.sample_string(&mut OsRng, SECRET_LEN),
        ))
    }

    /// Validates an explicit secret (16..=256 characters of `[A-Za-z0-9]`).
    pub fn parse(raw: &str) -> Result<Self, Error> {
        if is_secret(raw) && raw.len() >= MIN_SECRET_LEN {
            Ok(Self(Zeroizing::new(raw.to_owned())))
        } else {
            Err(Error::validation(
                "secret",
                "must be 16 to 256 characters of [A-Za-z0-9]",
            ))
        }
    }

    /// The secret itself. Handle with care: never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A full plaintext key, as handed to its owner once at creation.
/// Zeroized on drop; `Debug` never shows it, and it has no `Display`.
#[derive(Clone)]
pub struct PlainKey(Zeroizing<String>);

impl PlainKey {
    /// The full key text. Show it to its owner once; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PlainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainKey(<redacted>)")
    }
}

/// A presented key split into its parts, borrowing from the input.
#[derive(Clone, Copy)]
pub struct ParsedKey<'a> {
    /// The public key id.
    pub key_id: &'a str,
    /// The secret; never log it.
    pub secret: &'a str,
}

impl fmt::Debug for ParsedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedKey")
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// How keys are written: a prefix and a separator.
///
/// ```
/// use keygate::KeyFormat;
/// let format = KeyFormat::default();
/// let parsed = format.parse("ak_v1-7a74caa323a5410d-abcDEF123").unwrap();
/// assert_eq!(parsed.key_id, "7a74caa323a5410d");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFormat {
    prefix: String,
    separator: String,
}

impl Default for KeyFormat {
    fn default() -> Self {
        Self {
            prefix: "ak_v1".to_owned(),
            separator: "-".to_owned(),
        }
    }
}

impl KeyFormat {
    /// A format with a custom prefix and separator.
    ///
    /// The separator must be non-empty and contain no ASCII letter or digit
    /// (it could otherwise occur inside key ids and secrets); the prefix must
    /// be non-empty and must not contain the separator.
    pub fn new(prefix: impl Into<String>, separator: impl Into<String>) -> Result<Self, Error> {
        let (prefix, separator) = (prefix.into(), separator.into());
        let mut errors = Vec::new();
        if separator.is_empty() || separator.chars().any(|c| c.is_ascii_alphanumeric()) {
            errors.push(FieldError::new(
                "separator",
                "must be non-empty and contain no letter or digit",
            ));
        }
        if prefix.is_empty() || prefix.chars().any(char::is_whitespace) {
            errors.push(FieldError::new(
                "prefix",
                "must be non-empty, without spaces",
            ));
        } else if !separator.is_empty() && prefix.contains(&separator) {
            errors.push(FieldError::new("prefix", "must not contain the separator"));
        }
        if errors.is_empty() {
            Ok(Self { prefix, separator })
        } else {
            Err(Error::Validation(errors))
        }
    }

    /// The prefix, e.g. `ak_v1`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The separator, e.g. `-`.
    pub fn separator(&self) -> &str {
        &self.separator
    }

    /// Writes a full key from its parts.
    pub fn format(&self, key_id: &KeyId, secret: &Secret) -> PlainKey {
        let sep = &self.separator;
        let mut out = String::with_capacity(
            self.prefix.len() + 2 * sep.len() + key_id.0.len() + secret.0.len(),
        );
        out.push_str(&self.prefix);
        out.push_str(sep);
        out.push_str(&key_id.0);
        out.push_str(sep);
        out.push_str(&secret.0);
        PlainKey(Zeroizing::new(out))
    }

    /// Splits a presented key. Never panics, never allocates.
    ///
    /// Blank input is [`Error::KeyNotProvided`]; anything that is not exactly
    /// `prefix`, key id and secret with the configured separator is
    /// [`Error::InvalidKey`].
    pub fn parse<'a>(&self, raw: &'a str) -> Result<ParsedKey<'a>, Error> {
        if raw.trim().is_empty() {
            return Err(Error::KeyNotProvided);
        }
        let Some((key_id, secret)) = self.split(raw) else {
            return Err(Error::InvalidKey);
        };
        if !is_key_id(key_id) || !is_secret(secret) {
            return Err(Error::InvalidKey);
        }
        Ok(ParsedKey { key_id, secret })
    }

    /// The key id of a presented key that has the shape of one (prefix,
    /// separator, 16 bytes, separator), without checking its characters:
    /// enough to look the key up in the verification cache, whose hit
    /// means an identical key was [`parse`](Self::parse)d before.
    pub(crate) fn key_id_of<'a>(&self, raw: &'a str) -> Option<&'a str> {
        self.split(raw).map(|(key_id, _)| key_id)
    }

    /// Prefix, separator, key id and separator stripped: the key id and the
    /// secret, characters unchecked. Together with the character checks,
    /// equivalent to "exactly three non-empty segments": the prefix holds
    /// no separator, and key ids (hex) and secrets (alphanumeric) cannot.
    fn split<'a>(&self, raw: &'a str) -> Option<(&'a str, &'a str)> {
        let sep = self.separator.as_str();
        let rest = raw.strip_prefix(self.prefix.as_str())?.strip_prefix(sep)?;
        let (key_id, rest) = (rest.get(..KEY_ID_LEN)?, rest.get(KEY_ID_LEN..)?);
        Some((key_id, rest.strip_prefix(sep)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_parts_have_the_documented_shape() {
        let id = KeyId::generate();
        assert!(is_key_id(id.as_str()));
        let secret = Secret::generate();
        assert_eq!(secret.expose().len(), SECRET_LEN);
        assert!(secret.expose().bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(Secret::generate().expose(), secret.expose());
    }

    #[test]
    fn parse_outcomes() {
        let f = KeyFormat::default();
        assert!(matches!(f.parse(""), Err(Error::KeyNotProvided)));
        assert!(matches!(f.parse("   \t"), Err(Error::KeyNotProvided)));
        for bad in [
            "ak_v1",
            "ak_v1-0123456789abcdef",
            "ak_v1-0123456789abcdef-",
            "-0123456789abcdef-secret",
            "ak_v2-0123456789abcdef-secret",
            "ak_v1--secret",
            "ak_v1-0123456789abcdef-sec-ret",
            "ak_v1-0123456789ABCDEF-secret",
            "ak_v1-0123456789abcde-secret",
            "ak_v1-0123456789abcdef-s3cr'; DROP TABLE api_keys;--",
        ] {
            assert!(matches!(f.parse(bad), Err(Error::InvalidKey)), "{bad}");
        }
        let long = format!("ak_v1-0123456789abcdef-{}", "a".repeat(MAX_SECRET_LEN + 1));
        assert!(matches!(f.parse(&long), Err(Error::InvalidKey)));
        let ok = f.parse("ak_v1-0123456789abcdef-Secret42").unwrap();
        assert_eq!((ok.key_id, ok.secret), ("0123456789abcdef", "Secret42"));
    }

    #[test]
    fn custom_format_and_its_validation() {
        let f = KeyFormat::new("sk_live", "_").unwrap_err();
        assert!(
            matches!(f, Error::Validation(_)),
            "prefix containing the separator"
        );
        assert!(KeyFormat::new("pk", "x").is_err(), "alphanumeric separator");
        assert!(KeyFormat::new("", "-").is_err());
        let f = KeyFormat::new("pk.live", ":").unwrap();
        let key = f.format(&KeyId::generate(), &Secret::generate());
        assert!(key.expose().starts_with("pk.live:"));
        assert!(f.parse(key.expose()).is_ok());
        assert!(matches!(
            KeyFormat::default().parse(key.expose()),
            Err(Error::InvalidKey)
        ));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let secret = Secret::parse("SuperSecretValue1234").unwrap();
        let key = KeyFormat::default().format(&KeyId::generate(), &secret);
        for shown in [
            format!("{secret:?}"),
            format!("{key:?}"),
            format!("{:?}", KeyFormat::default().parse(key.expose()).unwrap()),
        ] {
            assert!(!shown.contains("SuperSecretValue1234"), "{shown}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(raw in any::<String>()) {
            let _ = KeyFormat::default().parse(&raw);
        }

        #[test]
        fn parse_never_panics_on_near_keys(raw in "(ak_v1)?-?[0-9a-f]{0,20}-?[A-Za-z0-9-]{0,80}") {
            let _ = KeyFormat::default().parse(&raw);
        }

        #[test]
        fn generate_then_parse_round_trips(prefix in "[a-z][a-z0-9_]{0,10}", sep in "[-.:~]") {
            let format = KeyFormat::new(prefix, sep).unwrap();
            let (id, secret) = (KeyId::generate(), Secret::generate());
            let key = format.format(&id, &secret);
            let parsed = format.parse(key.expose()).unwrap();
            prop_assert_eq!(parsed.key_id, id.as_str());
            prop_assert_eq!(parsed.secret, secret.expose());
        }
    }
}
