//! `keygate policy check FILE`: validates a gateway policy (no database).

use anyhow::{anyhow, Result};
use keygate_axum::gateway::DefaultAction;
use serde_json::json;

use crate::cli::{PolicyArgs, PolicyCommand};
use crate::output::{self, Report};
use crate::serve::policy::read;

/// Runs a `policy` subcommand. An invalid file is an error reading
/// `FILE:LINE: reason` (exit 1).
pub(super) fn run(args: PolicyArgs, json: bool) -> Result<Report> {
    match args.command {
        PolicyCommand::Check(check) => {
            let file = check.file;
            let policy = read(&file).map_err(|e| anyhow!(e.located()))?;
            let text = if json {
                let routes: Vec<_> = policy
                    .routes()
                    .iter()
                    .map(|r| {
                        json!({
                            "line": r.line(),
                            "methods": r.methods(),
                            "path": r.path(),
                            "scopes": r.scopes(),
                            "cost": r.cost(),
                        })
                    })
                    .collect();
                let summary = json!({
                    "file": file.display().to_string(),
                    "valid": true,
                    "default": policy.default_action().as_str(),
                    "routes": routes,
                });
                format!("{summary}\n")
            } else {
                let n = policy.routes().len();
                let unmatched = match policy.default_action() {
                    DefaultAction::Deny => "denied (403)",
                    DefaultAction::Allow => "allowed without a key check",
                };
                let mut text = format!(
                    "{}: valid: {n} route{}, unmatched requests {unmatched}\n",
                    file.display(),
                    if n == 1 { "" } else { "s" },
                );
                for route in policy.routes() {
                    text.push_str(&format!("  line {}: {route}\n", route.line()));
                }
                text
            };
            output::print(&text)?;
            Ok(Report::Nothing)
        }
    }
}
