//! The audit log: one event per change, written by the store in the same
//! transaction as the change.

use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::change::diff;
use crate::entity::ApiKey;
use crate::error::Error;

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// A key was created.
    Create,
    /// Fields were changed.
    Update,
    /// The key was deleted.
    Delete,
    /// The key was activated.
    Activate,
    /// The key was deactivated.
    Deactivate,
    /// The secret was replaced.
    Rotate,
}

impl AuditAction {
    /// Every action, for help texts and validation.
    pub const ALL: [AuditAction; 6] = [
        Self::Create,
        Self::Update,
        Self::Delete,
        Self::Activate,
        Self::Deactivate,
        Self::Rotate,
    ];

    /// The name stored and shown (`create`, `update`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Activate => "activate",
            Self::Deactivate => "deactivate",
            Self::Rotate => "rotate",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AuditAction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                Error::validation(
                    "action",
                    "must be one of create, update, delete, activate, deactivate, rotate",
                )
            })
    }
}

/// One recorded change. `changes` maps each changed field to `[old, new]`;
/// it never holds a secret, a hash or a plaintext key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Time-ordered unique id (UUIDv7, 32 hex characters).
    pub id: String,
    /// When the change was made.
    pub at: DateTime<Utc>,
    /// What the change did.
    pub action: AuditAction,
    /// The public key id of the changed key.
    pub key_id: String,
    /// The entity id of the changed key.
    pub entity_id: String,
    /// Who made the change: an admin key's key id over HTTP, `cli` (or
    /// `--actor NAME`) from the command line.
    pub actor: String,
    /// Field → `[old, new]`.
    pub changes: serde_json::Map<String, serde_json::Value>,
}

/// Who makes a change, when, and what kind it is: what a store needs to
/// write the change's event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// Who makes the change.
    pub actor: String,
    /// When.
    pub at: DateTime<Utc>,
    /// What kind of change.
    pub action: AuditAction,
}

impl Audit {
    /// The event for a change from `before` to `after` (`None` before a
    /// creation and after a deletion). `None` when an update changed
    /// nothing: no event is written for it.
    ///
    /// Stores call this with the row as it was inside the transaction and
    /// the row as written, and append the event in that transaction.
    pub fn event(&self, before: Option<&ApiKey>, after: Option<&ApiKey>) -> Option<AuditEvent> {
        let key = after.or(before)?;
        let changes = diff(before, after);
        if changes.is_empty() && before.is_some() && after.is_some() {
            return None;
        }
        Some(AuditEvent {
            id: uuid::Uuid::now_v7().simple().to_string(),
            at: self.at,
            action: self.action,
            key_id: key.key_id.clone(),
            entity_id: key.id.clone(),
            actor: self.actor.clone(),
            changes,
        })
    }
}

/// Which events to return, in which order.
///
/// ```
/// use keygate::EventFilter;
/// let one_key = EventFilter::for_key("0123456789abcdef0123456789abcdef");
/// assert!(!one_key.newest_first);
/// assert!(EventFilter::default().newest_first);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events of this entity.
    pub entity_id: Option<String>,
    /// Only events of the key with this public key id (works after the key
    /// is deleted, when no look-up can give its entity id).
    pub key_id: Option<String>,
    /// Only events of this action.
    pub action: Option<AuditAction>,
    /// Only events by this actor (exact).
    pub actor: Option<String>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Newest first (default) or oldest first.
    pub newest_first: bool,
    /// Events to skip.
    pub offset: u64,
    /// Events to return at most; `None` for all.
    pub limit: Option<u64>,
}

impl Default for EventFilter {
    fn default() -> Self {
        Self {
            entity_id: None,
            key_id: None,
            action: None,
            actor: None,
            since: None,
            newest_first: true,
            offset: 0,
            limit: None,
        }
    }
}

impl EventFilter {
    /// One key's events, oldest first.
    pub fn for_key(entity_id: impl Into<String>) -> Self {
        Self {
            entity_id: Some(entity_id.into()),
            newest_first: false,
            ..Self::default()
        }
    }

    /// True when `event` meets every criterion (the reference semantics).
    pub fn matches(&self, event: &AuditEvent) -> bool {
        self.entity_id
            .as_deref()
            .is_none_or(|id| event.entity_id == id)
            && self.key_id.as_deref().is_none_or(|k| event.key_id == k)
            && self.action.is_none_or(|a| event.action == a)
            && self.actor.as_deref().is_none_or(|a| event.actor == a)
            && self.since.is_none_or(|t| event.at >= t)
    }

    /// The order: by time, then by id, in the requested direction.
    pub fn compare(&self, a: &AuditEvent, b: &AuditEvent) -> Ordering {
        let ord = a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id));
        if self.newest_first {
            ord.reverse()
        } else {
            ord
        }
    }
}
