//! `search` and `count`: the filters of SPEC §5 as flags.

use anyhow::Result;
use keygate::{ApiKeyFilter, ApiKeyService};

use super::keys::tri_state;
use crate::cli::{FilterArgs, SearchArgs};
use crate::output::Report;

pub(super) async fn search(service: &ApiKeyService, args: SearchArgs) -> Result<Report> {
    let filter = ApiKeyFilter {
        order_by: args.order_by,
        order_desc: !args.asc,
        offset: args.offset,
        limit: Some(args.limit),
        ..filter(args.filter)
    };
    // Both run in the store, before paging: `total` counts every match.
    let items = service.find(&filter).await?;
    let total = service.count(&filter).await?;
    Ok(Report::Page {
        items,
        total,
        limit: args.limit,
        offset: args.offset,
    })
}

pub(super) async fn count(service: &ApiKeyService, args: FilterArgs) -> Result<Report> {
    Ok(Report::Count(service.count(&filter(args)).await?))
}

fn filter(args: FilterArgs) -> ApiKeyFilter {
    ApiKeyFilter {
        is_active: tri_state(args.active, args.inactive),
        never_used: tri_state(args.never_used, args.used),
        name_contains: args.name_contains,
        name_exact: args.name_exact,
        owner_id: args.owner_id,
        key_id: args.key_id,
        scopes_contain_all: args.scopes_contain_all,
        scopes_contain_any: args.scopes_contain_any,
        expires_before: args.expires_before,
        expires_after: args.expires_after,
        created_before: args.created_before,
        created_after: args.created_after,
        last_used_before: args.last_used_before,
        last_used_after: args.last_used_after,
        has_credits: tri_state(args.has_credits, args.no_credits),
        credits_below: args.credits_below,
        has_rate_limits: tri_state(args.has_rate_limits, args.no_rate_limits),
        ..ApiKeyFilter::default()
    }
}
