//! Gateway mode of `keygate serve --policy FILE`: the policy read at
//! start (an invalid one stops the server with its line and reason),
//! `/auth` merged into the app, and SIGHUP reloads that never drop a
//! request — an invalid new file leaves the old policy in force.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use axum::Router;
use keygate::ApiKeyService;
use keygate_axum::gateway::{self, Policy, PolicyError, SharedPolicy};
use keygate_axum::KeyVerifier;

/// Why a policy file cannot be used.
#[derive(Debug)]
pub(crate) enum LoadError {
    /// It cannot be read.
    Read(PathBuf, std::io::Error),
    /// It is not a valid policy.
    Invalid(PathBuf, PolicyError),
}

impl LoadError {
    /// `FILE:LINE: reason` (the form of compilers and linters), or the
    /// read error.
    pub(crate) fn located(&self) -> String {
        match self {
            Self::Read(path, e) => format!("cannot read {}: {e}", path.display()),
            Self::Invalid(path, e) => format!("{}:{}: {}", path.display(), e.line, e.reason),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(path, e) => write!(f, "cannot read policy {}: {e}", path.display()),
            Self::Invalid(path, e) => write!(f, "invalid policy {}: {e}", path.display()),
        }
    }
}

impl std::error::Error for LoadError {}

/// Reads and validates the policy at `path`.
pub(crate) fn read(path: &Path) -> Result<Policy, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::Read(path.to_owned(), e))?;
    Policy::from_toml_str(&text).map_err(|e| LoadError::Invalid(path.to_owned(), e))
}

/// The policy in force and what reloads it.
pub(crate) struct Gateway {
    path: PathBuf,
    policy: SharedPolicy,
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

impl Gateway {
    /// Reads the policy and installs the SIGHUP handler (before the
    /// server says it listens, so an early SIGHUP never kills it).
    pub(crate) fn load(path: &Path) -> Result<Self> {
        let policy = read(path)?;
        tracing::info!(
            file = %path.display(),
            routes = policy.routes().len(),
            default = policy.default_action().as_str(),
            "gateway mode: /auth answers by this policy (SIGHUP reloads it)"
        );
        #[cfg(unix)]
        let hangup = {
            use anyhow::Context;
            use tokio::signal::unix::{signal, SignalKind};
            signal(SignalKind::hangup()).context("cannot handle SIGHUP")?
        };
        Ok(Self {
            path: path.to_owned(),
            policy: SharedPolicy::new(policy),
            #[cfg(unix)]
            hangup,
        })
    }

    /// `app` with `/auth`, verifying keys with `service` from the same key
    /// sources as the rest of the server.
    pub(crate) fn mount(&self, app: Router, service: &ApiKeyService) -> Router {
        app.merge(gateway::router(
            KeyVerifier::new(service.clone()),
            self.policy.clone(),
        ))
    }

    /// Reloads the policy on every SIGHUP until the process ends.
    pub(crate) fn spawn_reload(self) {
        #[cfg(unix)]
        {
            let Self {
                path,
                policy,
                mut hangup,
            } = self;
            tokio::spawn(async move {
                while hangup.recv().await.is_some() {
                    reload(&path, &policy).await;
                }
            });
        }
    }
}

/// One reload: the new policy, or a warning and the old one.
#[cfg(unix)]
async fn reload(path: &Path, shared: &SharedPolicy) {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| LoadError::Read(path.to_owned(), e));
    match text
        .and_then(|t| Policy::from_toml_str(&t).map_err(|e| LoadError::Invalid(path.to_owned(), e)))
    {
        Ok(policy) => {
            let routes = policy.routes().len();
            let default = policy.default_action().as_str();
            shared.store(policy);
            tracing::info!(file = %path.display(), routes, default, "SIGHUP: policy reloaded");
        }
        Err(LoadError::Invalid(_, e)) => tracing::warn!(
            file = %path.display(),
            line = e.line,
            column = e.column,
            reason = %e.reason,
            "SIGHUP: invalid policy at line {}: {}; keeping the previous policy",
            e.line,
            e.reason
        ),
        Err(e @ LoadError::Read(..)) => tracing::warn!(
            file = %path.display(),
            error = %e,
            "SIGHUP: cannot read the policy; keeping the previous policy"
        ),
    }
}
