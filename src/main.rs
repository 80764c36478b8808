//! `bloody-sweet`: the one binary of the platform (see `bloody-sweet --help`).

use clap::Parser;

/// mimalloc instead of glibc's malloc: the gateway's request path allocates many small,
/// short-lived objects across threads, where glibc's arenas cost ~20% of its CPU (perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
