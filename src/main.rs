//! `bloody-sweet`: the one binary of the platform (see `bloody-sweet --help`).

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = bloody_sweet::commands::Cli::parse();
    // `token` prints only the token on stdout (logs go to stdout too).
    let quiet = matches!(cli.command, bloody_sweet::commands::Command::Token { .. });
    let _telemetry = match (!quiet).then(|| telemetry::init("bloody-sweet")) {
        None => None,
        Some(Ok(guard)) => Some(guard),
        Some(Err(err)) => {
            eprintln!("telemetry disabled: {err}");
            None
        }
    };
    match bloody_sweet::commands::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "bloody-sweet failed");
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
