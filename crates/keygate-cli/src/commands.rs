//! Runs a parsed command line and returns what to print.

mod audit;
mod keys;
mod last_admin;
mod offline;
mod policy;
mod query;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::output::Report;
use crate::{serve, store};

/// Runs `cli`. Errors are domain or environment failures (exit 1); usage
/// errors never get here, clap reports them (exit 2).
pub(crate) async fn run(cli: Cli) -> Result<Report> {
    let Cli { global, command } = cli;
    let command = match command {
        Command::Generate(args) => return Ok(offline::generate(args)),
        Command::Pepper => return Ok(offline::pepper()),
        Command::Migrate => {
            store::open_command_repository(&global).await?.close().await;
            return Ok(Report::Migrated);
        }
        Command::Serve(args) => {
            serve::run(&global, args).await?;
            return Ok(Report::Nothing);
        }
        Command::Policy(args) => return policy::run(args, global.json),
        other => other,
    };
    let (service, repo) = store::open_service(&global).await?;
    // Every change below is recorded in the audit log as made by this actor.
    let service = service.with_actor(global.actor.as_str());
    let report = match command {
        Command::Create(args) => keys::create(&service, args).await,
        Command::List(args) => keys::list(&service, args).await,
        Command::Get(args) => keys::get(&service, args).await,
        Command::Update(args) => keys::update(&service, args).await,
        Command::Delete(args) => keys::delete(&service, args).await,
        Command::Activate(args) => keys::activate(&service, args).await,
        Command::Deactivate(args) => keys::deactivate(&service, args).await,
        Command::Rotate(args) => keys::rotate(&service, args).await,
        Command::Credits(args) => keys::change_credits(&service, args).await,
        Command::Events(args) => {
            // Given on the command line, `--actor` is a filter here.
            let actor = global.actor_on_command_line.then(|| global.actor.clone());
            audit::events(&service, args, actor).await
        }
        Command::Verify(args) => keys::verify(&service, args).await,
        Command::Search(args) => query::search(&service, args).await,
        Command::Count(args) => query::count(&service, args).await,
        Command::Generate(_)
        | Command::Pepper
        | Command::Migrate
        | Command::Serve(_)
        | Command::Policy(_) => {
            unreachable!("handled above without a database")
        }
    };
    // A successful `verify` queued a last_used_at write: persist it now.
    let flushed = service.flush().await;
    repo.close().await;
    let report = report?;
    flushed?;
    Ok(report)
}
