//! The `pipeline-publisher` binary: parse the command line, start logging, run the command.

use clap::Parser;
use pipeline_publisher::cli::{Cli, Command};
use pipeline_publisher::{app, demo, telemetry};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Err(error) = telemetry::init(cli.log_format, &cli.log_level) {
        eprintln!("error: {error:#}");
        return std::process::ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Worker(args) => app::run_worker(args).await.map(|_| ()),
        Command::MockRegistry(args) => app::run_mock_registry(args).await,
        Command::Demo(args) => demo::run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("Caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
