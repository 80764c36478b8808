//! `bloody-sweet`: the one binary of the platform (see `bloody-sweet --help`).

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = bloody_sweet::commands::Cli::parse();
    let _telemetry = match telemetry::init("bloody-sweet") {
        Ok(guard) => Some(guard),
        Err(err) => {
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
