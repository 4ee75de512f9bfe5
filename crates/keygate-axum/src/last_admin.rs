//! Nobody locks everyone out over HTTP: the last working admin key (active,
//! unexpired, holding the admin scope) cannot be deactivated, deleted,
//! stripped of the admin scope or of its active flag by a `PATCH`, or left
//! without credits (admin requests take credits like any other). 409.
//!
//! The check and the change are two steps, not one transaction: two admins
//! deactivating each other's keys at the same instant can both pass it and
//! leave no admin key. That race is accepted (it needs two admins acting
//! against each other within milliseconds); the CLI, which talks to the
//! database directly, can always create a new admin key.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use keygate::{ApiKey, ApiKeyFilter, ApiKeyService, ApiKeyUpdate, CreditChange};

use crate::error::ApiError;

/// What a request is about to do to a key.
pub(crate) enum Change<'a> {
    Deactivate,
    Delete,
    Update(&'a ApiKeyUpdate),
    /// Admin requests take credits like any other: none left is a lock-out.
    Credits(CreditChange),
}

impl Change<'_> {
    /// True when the change could make a working admin key stop being one
    /// (before reading the key).
    fn may_demote(&self, admin_scope: &str) -> bool {
        match self {
            Self::Deactivate | Self::Delete | Self::Credits(_) => true,
            Self::Update(u) => {
                u.is_active == Some(false)
                    || u.scopes
                        .as_ref()
                        .is_some_and(|s| !s.iter().any(|s| s == admin_scope))
                    || matches!(&u.credits, Some(Some(c)) if c.remaining == 0)
            }
        }
    }

    /// True when the change makes `key` (a working admin key) stop being
    /// one at `now`.
    fn demotes(&self, key: &ApiKey, now: DateTime<Utc>) -> bool {
        match self {
            Self::Credits(CreditChange::Set(n)) => *n == 0,
            Self::Credits(CreditChange::Add(n)) => key
                .credits
                .as_ref()
                .is_some_and(|c| i128::from(c.at(now).remaining) + i128::from(*n) <= 0),
            _ => true,
        }
    }

    fn verb(&self) -> &'static str {
        match self {
            Self::Deactivate => "deactivate",
            Self::Delete => "delete",
            Self::Update(_) => "deactivate, remove the admin scope from or take every credit from",
            Self::Credits(_) => "take every credit from",
        }
    }
}

/// `Ok` unless `change` would leave no working admin key: then 409 with
/// the reason. A missing key is 404 (the change would be too).
pub(crate) async fn refuse_last_admin(
    service: &ApiKeyService,
    admin_scope: &str,
    id: &str,
    change: Change<'_>,
) -> Result<(), ApiError> {
    if !change.may_demote(admin_scope) {
        return Ok(());
    }
    let now = keygate::now_micros();
    let key = service.get(id).await?;
    if !works_as_admin(&key, admin_scope, now) || !change.demotes(&key, now) {
        return Ok(());
    }
    if working_admins(service, admin_scope, now).await? > 1 {
        return Ok(());
    }
    Err(ApiError::bad_request(
        StatusCode::CONFLICT,
        format!(
            "Refusing to {} the last active admin key (the only active, unexpired key holding \
             '{admin_scope}'): nobody could manage keys over HTTP afterwards. Create or activate \
             another admin key first.",
            change.verb()
        ),
    ))
}

pub(crate) fn works_as_admin(key: &ApiKey, admin_scope: &str, now: DateTime<Utc>) -> bool {
    key.is_active
        && !key.is_expired_at(now)
        && key.scopes.contains(admin_scope)
        && key.credits.as_ref().is_none_or(|c| c.at(now).remaining > 0)
}

/// Active keys holding the admin scope that have not expired at `now`,
/// less those without credits left.
async fn working_admins(
    service: &ApiKeyService,
    admin_scope: &str,
    now: DateTime<Utc>,
) -> Result<u64, ApiError> {
    let admins = ApiKeyFilter {
        is_active: Some(true),
        scopes_contain_all: vec![admin_scope.to_owned()],
        unexpired_at: Some(now),
        ..ApiKeyFilter::default()
    };
    let spent = ApiKeyFilter {
        credits_below: Some(1),
        ..admins.clone()
    };
    let all = service.count(&admins).await?;
    Ok(all.saturating_sub(service.count(&spent).await?))
}
