//! `bloody-sweet`: the one binary of the platform (see `bloody-sweet --help`).

use clap::Parser;

/// mimalloc instead of glibc's malloc: the gateway's request path allocates many small,
/// short-lived objects across threads, where glibc's arenas cost ~20% of its CPU (perf).
/// Built with `no_thp`: mimalloc 3.3 asks for transparent huge pages on its arenas by default,
/// which rounds resident memory up in 2 MiB steps (peak RSS under the gateway benchmark 63 MB
/// with, 55 MB without, same throughput).
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
