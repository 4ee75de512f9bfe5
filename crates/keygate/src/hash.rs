//! Hashing of secrets: Argon2id (default), bcrypt over HMAC-SHA256, and a
//! fast keyed HMAC-SHA256. Verification reads the algorithm from the stored
//! hash itself, so the default can change without breaking old keys.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, Params};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::Error;

type HmacSha256 = Hmac<Sha256>;

/// Environment variable the pepper is read from.
pub const PEPPER_ENV: &str = "API_KEY_PEPPER";
const PLACEHOLDER_PEPPER: &str = "keygate-placeholder-pepper-change-me";
const HMAC_PREFIX: &str = "$keygate-hmac-sha256$v=1$";

/// A server-side secret mixed into every hash. Zeroized on drop; `Debug`
/// never shows it.
#[derive(Clone)]
pub struct Pepper {
    bytes: Zeroizing<Vec<u8>>,
    placeholder: bool,
}

impl Pepper {
    /// An explicit pepper. An empty one is refused.
    pub fn new(pepper: impl AsRef<[u8]>) -> Result<Self, Error> {
        let bytes = pepper.as_ref();
        if bytes.is_empty() {
            return Err(Error::validation("pepper", "must not be empty"));
        }
        Ok(Self {
            bytes: Zeroizing::new(bytes.to_vec()),
            placeholder: false,
        })
    }

    /// The built-in placeholder. It works, but anyone who reads this source
    /// knows it: use it only in development.
    pub fn placeholder() -> Self {
        Self {
            bytes: Zeroizing::new(PLACEHOLDER_PEPPER.as_bytes().to_vec()),
            placeholder: true,
        }
    }

    /// Reads `API_KEY_PEPPER`; falls back to the placeholder with a warning.
    pub fn from_env() -> Self {
        match std::env::var(PEPPER_ENV) {
            Ok(v) if !v.is_empty() => Self::new(v).unwrap_or_else(|_| Self::placeholder()),
            _ => {
                tracing::warn!(
                    "{PEPPER_ENV} is not set: using the built-in placeholder pepper, which is NOT safe for production"
                );
                Self::placeholder()
            }
        }
    }

    /// True for the built-in placeholder.
    pub fn is_placeholder(&self) -> bool {
        self.placeholder
    }

    fn hmac(&self, secret: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.bytes).expect("HMAC takes any key length");
        mac.update(secret);
        mac
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pepper")
            .field("bytes", &"<redacted>")
            .field("placeholder", &self.placeholder)
            .finish()
    }
}

/// The algorithm used to hash new secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// Argon2id with explicit cost parameters.
    Argon2 {
        /// Memory in KiB.
        m_cost: u32,
        /// Iterations.
        t_cost: u32,
        /// Lanes.
        p_cost: u32,
    },
    /// bcrypt over HMAC-SHA256(pepper, secret), cost 4..=31.
    Bcrypt {
        /// Cost (log2 rounds).
        cost: u32,
    },
    /// HMAC-SHA256(pepper, secret): fast and sound for high-entropy secrets.
    HmacSha256,
}

impl HashAlgorithm {
    /// Argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane).
    pub const ARGON2_DEFAULT: Self = Self::Argon2 {
        m_cost: 19 * 1024,
        t_cost: 2,
        p_cost: 1,
    };
    /// bcrypt at cost 12.
    pub const BCRYPT_DEFAULT: Self = Self::Bcrypt { cost: 12 };

    /// Which algorithm wrote `stored`, or `None` if it is not a known format.
    pub fn of_stored(stored: &str) -> Option<StoredKind> {
        if stored.starts_with("$argon2") {
            Some(StoredKind::Argon2)
        } else if ["$2a$", "$2b$", "$2y$"]
            .iter()
            .any(|p| stored.starts_with(p))
        {
            Some(StoredKind::Bcrypt)
        } else if stored.starts_with(HMAC_PREFIX) {
            Some(StoredKind::HmacSha256)
        } else {
            None
        }
    }
}

impl Default for HashAlgorithm {
    fn default() -> Self {
        Self::ARGON2_DEFAULT
    }
}

/// The format of a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredKind {
    /// A PHC `$argon2…` string.
    Argon2,
    /// A `$2a$`/`$2b$`/`$2y$` bcrypt string.
    Bcrypt,
    /// keygate's `$keygate-hmac-sha256$v=1$…`.
    HmacSha256,
}

impl StoredKind {
    /// True when checking this kind costs milliseconds, so it belongs on a
    /// blocking thread rather than the async executor.
    pub fn is_slow(self) -> bool {
        !matches!(self, Self::HmacSha256)
    }
}

/// Hashes and verifies secrets with a pepper.
///
/// ```
/// use keygate::{HashAlgorithm, KeyHasher, Pepper};
/// let hasher = KeyHasher::new(Pepper::new("pepper").unwrap(), HashAlgorithm::HmacSha256).unwrap();
/// let stored = hasher.hash("s3cret").unwrap();
/// assert!(hasher.verify("s3cret", &stored).unwrap());
/// assert!(!hasher.verify("other", &stored).unwrap());
/// ```
#[derive(Debug, Clone)]
pub struct KeyHasher {
    pepper: Pepper,
    algorithm: HashAlgorithm,
}

impl KeyHasher {
    /// A hasher writing new hashes with `algorithm`. Checks the parameters.
    pub fn new(pepper: Pepper, algorithm: HashAlgorithm) -> Result<Self, Error> {
        match algorithm {
            HashAlgorithm::Argon2 {
                m_cost,
                t_cost,
                p_cost,
            } => {
                Params::new(m_cost, t_cost, p_cost, None)
                    .map_err(|e| Error::validation("argon2", e.to_string()))?;
            }
            HashAlgorithm::Bcrypt { cost } if !(4..=31).contains(&cost) => {
                return Err(Error::validation("bcrypt_cost", "must be in 4..=31"));
            }
            _ => {}
        }
        Ok(Self { pepper, algorithm })
    }

    /// The algorithm new hashes are written with.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }

    /// The pepper.
    pub fn pepper(&self) -> &Pepper {
        &self.pepper
    }

    /// Hashes a secret with the configured algorithm.
    pub fn hash(&self, secret: &str) -> Result<String, Error> {
        match self.algorithm {
            HashAlgorithm::Argon2 {
                m_cost,
                t_cost,
                p_cost,
            } => {
                let params = Params::new(m_cost, t_cost, p_cost, None)
                    .map_err(|e| Error::Hash(e.to_string()))?;
                let argon =
                    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
                let salt = SaltString::generate(&mut OsRng);
                let input = self.argon2_input(secret);
                argon
                    .hash_password(&input, &salt)
                    .map(|h| h.to_string())
                    .map_err(|e| Error::Hash(e.to_string()))
            }
            HashAlgorithm::Bcrypt { cost } => {
                let mac = self.pepper.hmac(secret.as_bytes()).finalize().into_bytes();
                bcrypt::hash_with_result(mac.as_slice(), cost)
                    .map(|h| h.format_for_version(bcrypt::Version::TwoB))
                    .map_err(|e| Error::Hash(e.to_string()))
            }
            HashAlgorithm::HmacSha256 => {
                let mac = self.pepper.hmac(secret.as_bytes()).finalize().into_bytes();
                Ok(format!("{HMAC_PREFIX}{}", STANDARD_NO_PAD.encode(mac)))
            }
        }
    }

    /// Checks `secret` against a stored hash of any supported format, in
    /// constant time. `Ok(false)` on mismatch; `Err` only when `stored` is
    /// not a readable hash.
    pub fn verify(&self, secret: &str, stored: &str) -> Result<bool, Error> {
        match HashAlgorithm::of_stored(stored) {
            Some(StoredKind::Argon2) => {
                let parsed = PasswordHash::new(stored)
                    .map_err(|e| Error::Hash(format!("unreadable argon2 hash: {e}")))?;
                let input = self.argon2_input(secret);
                // Params, version and variant come from the stored hash.
                Ok(Argon2::default().verify_password(&input, &parsed).is_ok())
            }
            Some(StoredKind::Bcrypt) => {
                let mac = self.pepper.hmac(secret.as_bytes()).finalize().into_bytes();
                bcrypt::verify(mac.as_slice(), stored)
                    .map_err(|e| Error::Hash(format!("unreadable bcrypt hash: {e}")))
            }
            Some(StoredKind::HmacSha256) => {
                let expected = STANDARD_NO_PAD
                    .decode(&stored[HMAC_PREFIX.len()..])
                    .map_err(|_| Error::Hash("unreadable hmac hash".into()))?;
                // `verify_slice` compares in constant time.
                Ok(self
                    .pepper
                    .hmac(secret.as_bytes())
                    .verify_slice(&expected)
                    .is_ok())
            }
            None => Err(Error::Hash("unknown hash format".into())),
        }
    }

    /// True when `stored` was not written with the current algorithm and
    /// parameters, so a successful verify may re-hash it.
    pub fn needs_rehash(&self, stored: &str) -> bool {
        match (self.algorithm, HashAlgorithm::of_stored(stored)) {
            (HashAlgorithm::HmacSha256, Some(StoredKind::HmacSha256)) => false,
            (HashAlgorithm::Bcrypt { cost }, Some(StoredKind::Bcrypt)) => {
                stored.get(4..6).and_then(|c| c.parse::<u32>().ok()) != Some(cost)
            }
            (
                HashAlgorithm::Argon2 {
                    m_cost,
                    t_cost,
                    p_cost,
                },
                Some(StoredKind::Argon2),
            ) => PasswordHash::new(stored)
                .ok()
                .and_then(|h| Params::try_from(&h).ok())
                .is_none_or(|p| (p.m_cost(), p.t_cost(), p.p_cost()) != (m_cost, t_cost, p_cost)),
            _ => true,
        }
    }

    fn argon2_input(&self, secret: &str) -> Zeroizing<Vec<u8>> {
        let mut input = Zeroizing::new(Vec::with_capacity(secret.len() + self.pepper.bytes.len()));
        input.extend_from_slice(secret.as_bytes());
        input.extend_from_slice(&self.pepper.bytes);
        input
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE_PEPPER: &str = "fixture-pepper-not-for-production";

    fn hasher(algorithm: HashAlgorithm) -> KeyHasher {
        KeyHasher::new(Pepper::new(FIXTURE_PEPPER).unwrap(), algorithm).unwrap()
    }

    #[test]
    fn every_algorithm_round_trips_and_rejects_wrong_secret() {
        for algorithm in [
            HashAlgorithm::Argon2 {
                m_cost: 64,
                t_cost: 1,
                p_cost: 1,
            },
            HashAlgorithm::Bcrypt { cost: 4 },
            HashAlgorithm::HmacSha256,
        ] {
            let h = hasher(algorithm);
            let stored = h.hash("correctSecret").unwrap();
            assert!(h.verify("correctSecret", &stored).unwrap(), "{algorithm:?}");
            assert!(!h.verify("wrongSecret", &stored).unwrap(), "{algorithm:?}");
            assert!(!stored.contains("correctSecret"));
            assert!(!h.needs_rehash(&stored), "{algorithm:?}");
        }
    }

    #[test]
    fn verification_dispatches_on_the_stored_format() {
        let argon = hasher(HashAlgorithm::Argon2 {
            m_cost: 64,
            t_cost: 1,
            p_cost: 1,
        });
        let fast = hasher(HashAlgorithm::HmacSha256);
        let stored = argon.hash("abc").unwrap();
        assert!(fast.verify("abc", &stored).unwrap());
        assert!(fast.needs_rehash(&stored));
        assert!(argon.verify("abc", &fast.hash("abc").unwrap()).unwrap());
    }

    #[test]
    fn pepper_matters() {
        let a = hasher(HashAlgorithm::HmacSha256);
        let b = KeyHasher::new(Pepper::new("other").unwrap(), HashAlgorithm::HmacSha256).unwrap();
        assert!(!b.verify("abc", &a.hash("abc").unwrap()).unwrap());
    }

    #[test]
    fn hashes_written_by_the_python_library_verify() {
        // From keygate-sqlx/tests/fixtures/keyshield-2.0.1.sqlite3 (argon2-cffi m=65536,t=3,p=4 and bcrypt cost 4).
        let h = hasher(HashAlgorithm::default());
        let reader = "$argon2id$v=19$m=65536,t=3,p=4$e/N6g2R37vPb8HqqTiPm6A$YcKAY4WBMHscwr9Q6fRLJ9YmYXc+D/cw0XpQ6tWrJhE";
        let secret = "NUztRKo0UHzFcEfzroakMj9q88wqSmnqQBUB2dzB5ZwrYYYe9Qi9BWjNy4kaDmSZ";
        assert!(h.verify(secret, reader).unwrap());
        assert!(!h
            .verify(
                "NUztRKo0UHzFcEfzroakMj9q88wqSmnqQBUB2dzB5ZwrYYYe9Qi9BWjNy4kaDmSz",
                reader
            )
            .unwrap());
        let bcrypt = "$2b$04$BmpdKR1V2F2kQ4utXD2wM.6mTW4.cOVnvEEse8ElfsZwN6dzODdGm";
        let secret = "Yh5Tw6dzOopROyQAAIiKQDqSbFWcFoGUoC3FA5YycN654ApPSiePN00jfWaOQ14a";
        assert!(h.verify(secret, bcrypt).unwrap());
        assert!(!h.verify("Yh5T", bcrypt).unwrap());
    }

    #[test]
    fn bad_parameters_and_hashes_are_errors_not_panics() {
        let p = Pepper::new("x").unwrap();
        assert!(KeyHasher::new(p.clone(), HashAlgorithm::Bcrypt { cost: 3 }).is_err());
        assert!(KeyHasher::new(p.clone(), HashAlgorithm::Bcrypt { cost: 32 }).is_err());
        assert!(KeyHasher::new(
            p,
            HashAlgorithm::Argon2 {
                m_cost: 1,
                t_cost: 0,
                p_cost: 0
            }
        )
        .is_err());
        let h = hasher(HashAlgorithm::HmacSha256);
        assert!(h.verify("abc", "plain").is_err());
        for junk in [
            "",
            "plain",
            "$argon2id$garbage",
            "$2b$99$short",
            "$keygate-hmac-sha256$v=1$!!",
        ] {
            // Unreadable hashes are errors or mismatches, never a match.
            assert!(!h.verify("abc", junk).unwrap_or(false), "{junk}");
        }
        assert!(Pepper::new("").is_err());
    }

    #[test]
    fn pepper_debug_is_redacted() {
        let shown = format!("{:?}", Pepper::new(FIXTURE_PEPPER).unwrap());
        assert!(!shown.contains(FIXTURE_PEPPER));
    }
}
