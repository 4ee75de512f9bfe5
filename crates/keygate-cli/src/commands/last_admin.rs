//! The last working admin key is not taken out of service by accident:
//! `deactivate`, `delete`, and an `update` with `--inactive` or with
//! `--scopes` lacking the admin scope are refused (exit 1, nothing changed)
//! when the key is the only active, unexpired one holding `keygate:admin`,
//! the scope the management API of `keygate serve` requires. With `--force`
//! they go ahead. (Over HTTP the same change is a 409, never forced.)
//!
//! Check, then change: not one transaction. Two processes demoting the last
//! two admin keys at the same instant can both pass; the CLI needs no key,
//! so `keygate create --scopes keygate:admin` repairs that.

use anyhow::{bail, Result};
use keygate::{ApiKey, ApiKeyFilter, ApiKeyService, ApiKeyUpdate};
use keygate_axum::DEFAULT_ADMIN_SCOPE;

/// What a command is about to do to a key.
pub(super) enum Change<'a> {
    Deactivate,
    Delete,
    Update(&'a ApiKeyUpdate),
}

impl Change<'_> {
    /// True when the change would make a working admin key stop being one.
    fn demotes(&self) -> bool {
        match self {
            Self::Deactivate | Self::Delete => true,
            Self::Update(change) => {
                change.is_active == Some(false)
                    || change
                        .scopes
                        .as_ref()
                        .is_some_and(|s| !s.iter().any(|s| s == DEFAULT_ADMIN_SCOPE))
            }
        }
    }

    fn verb(&self) -> String {
        match self {
            Self::Deactivate => "deactivate".to_owned(),
            Self::Delete => "delete".to_owned(),
            Self::Update(change) if change.is_active == Some(false) => "deactivate".to_owned(),
            Self::Update(_) => format!("remove {DEFAULT_ADMIN_SCOPE} from"),
        }
    }
}

/// `Ok` when `change` may be made to key `id`: with `force`, when it does
/// not demote an admin key, when the key is not a working admin key (or
/// does not exist: the command itself then reports it), or when another
/// working admin key remains. Otherwise the one-line reason.
pub(super) async fn check(
    service: &ApiKeyService,
    id: &str,
    change: Change<'_>,
    force: bool,
) -> Result<()> {
    if force || !change.demotes() {
        return Ok(());
    }
    let key = match service.get(id).await {
        Ok(key) => key,
        Err(keygate::Error::NotFound) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let now = keygate::now_micros();
    if !works_as_admin(&key, now) {
        return Ok(());
    }
    let admins = ApiKeyFilter {
        is_active: Some(true),
        scopes_contain_all: vec![DEFAULT_ADMIN_SCOPE.to_owned()],
        ..ApiKeyFilter::default()
    };
    let others = service
        .find(&admins)
        .await?
        .iter()
        .any(|other| other.id != key.id && works_as_admin(other, now));
    if others {
        return Ok(());
    }
    bail!(
        "refusing to {} the last active admin key (the only active, unexpired key holding \
         {DEFAULT_ADMIN_SCOPE}; nobody could manage keys over HTTP any more); add --force to do \
         it anyway",
        change.verb()
    )
}

fn works_as_admin(key: &ApiKey, now: chrono::DateTime<chrono::Utc>) -> bool {
    key.is_active && !key.is_expired_at(now) && key.scopes.contains(DEFAULT_ADMIN_SCOPE)
}
