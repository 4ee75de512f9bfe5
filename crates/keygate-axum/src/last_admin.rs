//! Nobody locks everyone out over HTTP: the last working admin key (active,
//! unexpired, holding the admin scope) cannot be deactivated, deleted, or
//! stripped of the admin scope or of its active flag by a `PATCH`. 409.
//!
//! The check and the change are two steps, not one transaction: two admins
//! deactivating each other's keys at the same instant can both pass it and
//! leave no admin key. That race is accepted (it needs two admins acting
//! against each other within milliseconds); the CLI, which talks to the
//! database directly, can always create a new admin key.

use axum::http::StatusCode;
use chrono::TimeDelta;
use keygate::{ApiKey, ApiKeyFilter, ApiKeyService, ApiKeyUpdate};

use crate::error::ApiError;

/// What a request is about to do to a key.
pub(crate) enum Change<'a> {
    Deactivate,
    Delete,
    Update(&'a ApiKeyUpdate),
}

impl Change<'_> {
    /// True when the change would make a working admin key stop being one.
    fn demotes(&self, admin_scope: &str) -> bool {
        match self {
            Self::Deactivate | Self::Delete => true,
            Self::Update(u) => {
                u.is_active == Some(false)
                    || u.scopes
                        .as_ref()
                        .is_some_and(|s| !s.iter().any(|s| s == admin_scope))
            }
        }
    }

    fn verb(&self) -> &'static str {
        match self {
            Self::Deactivate => "deactivate",
            Self::Delete => "delete",
            Self::Update(_) => "deactivate or remove the admin scope from",
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
    if !change.demotes(admin_scope) {
        return Ok(());
    }
    let now = keygate::now_micros();
    if !works_as_admin(&service.get(id).await?, admin_scope, now) {
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

pub(crate) fn works_as_admin(
    key: &ApiKey,
    admin_scope: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    key.is_active && !key.is_expired_at(now) && key.scopes.contains(admin_scope)
}

/// Active keys holding the admin scope, less those expired at `now`
/// (`expires_at <= now`; keys without an expiry never match
/// `expires_before`).
async fn working_admins(
    service: &ApiKeyService,
    admin_scope: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<u64, ApiError> {
    let admins = ApiKeyFilter {
        is_active: Some(true),
        scopes_contain_all: vec![admin_scope.to_owned()],
        ..ApiKeyFilter::default()
    };
    let expired = ApiKeyFilter {
        // Stored times have microsecond precision.
        expires_before: Some(now + TimeDelta::microseconds(1)),
        ..admins.clone()
    };
    let all = service.count(&admins).await?;
    let gone = service.count(&expired).await?;
    Ok(all.saturating_sub(gone))
}
