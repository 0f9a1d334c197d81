//! The `pipeline-publisher` binary: parse the command line, start logging, run the command.
//!
//! Exit codes: 0 success; 1 failure; 2 `publish` found nothing to publish; 64 the command line
//! could not be parsed or the sources (`--source`, `--sources-file`) are malformed (EX_USAGE,
//! kept apart from 2 so scripts can tell the two apart).

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use pipeline_publisher::cli::{Cli, Command};
use pipeline_publisher::commands::{self, errors};
#[cfg(feature = "stand-ins")]
use pipeline_publisher::demo;
use pipeline_publisher::{app, telemetry};

/// The command line was not understood (sysexits' EX_USAGE).
const EXIT_USAGE: u8 = 64;

#[tokio::main]
async fn main() -> ExitCode {
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches).map(|cli| (cli, matches)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // The one-shot commands (and a plain `demo`) print their own results; their log lines are
    // for problems only, unless a level was asked for.
    let one_shot =
        matches!(cli.command, Command::Publish(_) | Command::Check(_)) || plain_demo(&cli.command);
    let level = if one_shot && matches.value_source("log_level") == Some(ValueSource::DefaultValue)
    {
        "warn"
    } else {
        cli.log_level.as_str()
    };
    if let Err(error) = telemetry::init(cli.log_format, level) {
        eprintln!("{}", errors::render(&error));
        return ExitCode::from(EXIT_USAGE);
    }
    let result = match cli.command {
        Command::Worker(args) => app::run_worker(args).await.map(|_| 0),
        #[cfg(feature = "stand-ins")]
        Command::MockRegistry(args) => app::run_mock_registry(args).await.map(|()| 0),
        Command::Publish(args) => commands::publish::run(args).await,
        Command::Check(args) => commands::check::run(args).await,
        #[cfg(feature = "stand-ins")]
        Command::Demo(args) => demo::run(args).await.map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("{}", errors::render(&error));
            // Malformed sources are a usage error, like a malformed flag.
            if error
                .downcast_ref::<pipeline_publisher::cli::sources::SourcesError>()
                .is_some()
            {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// A `demo` without `--verbose` prints its own summary, like the one-shot commands.
#[cfg(feature = "stand-ins")]
fn plain_demo(command: &Command) -> bool {
    matches!(command, Command::Demo(args) if !args.verbose)
}

#[cfg(not(feature = "stand-ins"))]
fn plain_demo(_: &Command) -> bool {
    false
}
