//! `events`: the audit log, for one key or for every key.

use anyhow::Result;
use keygate::{ApiKeyService, EventFilter};

use crate::cli::EventsArgs;
use crate::output::Report;

/// One key's events oldest first (`ID` given), else the whole log newest
/// first. `actor` filters by who made the changes.
pub(super) async fn events(
    service: &ApiKeyService,
    args: EventsArgs,
    actor: Option<String>,
) -> Result<Report> {
    let base = match &args.id {
        // A public key id (16 hex characters) finds a key's events even
        // after the key is deleted.
        Some(id) if keygate::KeyId::parse(id).is_ok() => EventFilter {
            key_id: Some(id.clone()),
            newest_first: false,
            ..EventFilter::default()
        },
        Some(id) => EventFilter::for_key(id.as_str()),
        None => EventFilter::default(),
    };
    let filter = EventFilter {
        action: args.action,
        actor,
        since: args.since,
        offset: args.offset,
        limit: Some(args.limit),
        ..base
    };
    let items = service.events(&filter).await?;
    let total = service.count_events(&filter).await?;
    if let (0, Some(id)) = (total, &args.id) {
        // A deleted key still has its events: "not found" only when there
        // is neither a key nor any event for this id.
        let any = EventFilter {
            action: None,
            actor: None,
            since: None,
            ..filter.clone()
        };
        if service.count_events(&any).await? == 0 {
            match service.get(id).await {
                Err(keygate::Error::NotFound) => service.get_by_key_id(id).await.map(drop)?,
                other => other.map(drop)?,
            }
        }
    }
    Ok(Report::Events {
        items,
        total,
        limit: args.limit,
        offset: args.offset,
    })
}
