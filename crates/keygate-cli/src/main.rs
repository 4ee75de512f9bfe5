//! `keygate`: manage API keys from the command line, or serve them over HTTP.
//!
//! Exit status: 0 on success, 1 on a failed operation (one line on stderr),
//! 2 on a usage error (clap's own report).

mod cli;
mod commands;
mod logging;
mod output;
mod serve;
mod store;
mod table;

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // `events --actor NAME` filters by NAME; KEYGATE_ACTOR alone does not.
    cli.global.actor_on_command_line =
        matches.value_source("actor") == Some(ValueSource::CommandLine);
    let json = cli.global.json;
    logging::init(match &cli.command {
        Command::Serve(args) => Some(args.log_format),
        _ => None,
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::Error::from(e)),
    };
    let result = runtime.block_on(commands::run(cli));
    // Do not wait for idle pool connections or hashing threads.
    runtime.shutdown_background();
    match result.and_then(|report| Ok(output::print(&report.render(json))?)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// One line on stderr, whatever the error chain.
fn fail(e: &anyhow::Error) -> ExitCode {
    let reason = format!("{e:#}").replace(['\n', '\r'], " ");
    eprintln!("keygate: {reason}");
    ExitCode::from(1)
}
