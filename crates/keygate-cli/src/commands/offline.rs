//! Commands that need no database: `generate` and `pepper`.

use keygate::{KeyFormat, KeyId, Secret};

use crate::cli::GenerateArgs;
use crate::output::Report;

/// A fresh key in the default format, for `API_KEY_*` variables. It is not
/// stored: a service loads it from its environment.
pub(super) fn generate(args: GenerateArgs) -> Report {
    let key = KeyFormat::default().format(&KeyId::generate(), &Secret::generate());
    Report::Generated { var: args.var, key }
}

/// A fresh pepper: 64 characters of `[A-Za-z0-9]` from the OS CSPRNG
/// (about 380 bits), safe to paste into an environment file unquoted.
pub(super) fn pepper() -> Report {
    Report::Pepper(Secret::generate())
}
