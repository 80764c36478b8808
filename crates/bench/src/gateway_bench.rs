//! The `gateway` benchmark, after the public federation gateway benchmark: four subgraphs
//! (accounts, inventory, products, reviews, from `bench-subgraphs`), one query (`TestQuery`,
//! seven subgraph fetches, ~88 KB response), constant load of 50 clients for 60 s, against our
//! gateway and then Hive Router on this machine, both reading the same composed supergraph and
//! neither deduplicating inbound requests.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use bench_subgraphs::{RunningSubgraphs, Subgraph};
use serde_json::{Value, json};

use crate::gateway_process::GatewayProcess;
use crate::gateway_report::{self, GatewayFigures};
use crate::load::{self, LoadSpec};

/// How the run is shaped and what it runs.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Concurrent clients, each with one request in flight (k6's virtual users).
    #[arg(long, default_value_t = 50)]
    pub clients: usize,
    /// Length of the measured window, in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// Load before the measured window, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub warmup: f64,
    /// Our binary; the benchmark runs `BIN gateway --supergraph FILE --listen ADDR`.
    #[arg(long, default_value = "bloody-sweet")]
    pub ours_bin: PathBuf,
    /// One more argument for our gateway (repeatable), e.g. `--ours-arg=--some-flag`.
    #[arg(long = "ours-arg", allow_hyphen_values = true)]
    pub ours_args: Vec<String>,
    /// Hive Router's binary (`hive_router`).
    #[arg(long, default_value = "hive_router")]
    pub hive_router_bin: PathBuf,
    /// The load generator (`oha`).
    #[arg(long, default_value = "oha")]
    pub oha_bin: PathBuf,
    /// Run Hive Router alone.
    #[arg(long)]
    pub skip_ours: bool,
    /// Run our gateway alone.
    #[arg(long)]
    pub skip_peer: bool,
    /// The loopback port each gateway listens on, in turn.
    #[arg(long, default_value_t = 14000)]
    pub port: u16,
    /// Use subgraphs already running instead of starting ours: a URL with `{name}` for the
    /// subgraph's name, e.g. `http://127.0.0.1:4200/{name}`. The responses are then checked
    /// against each other instead of against our data.
    #[arg(long)]
    pub external_subgraphs: Option<String>,
    /// Use this supergraph instead of composing one from the subgraphs' SDL.
    #[arg(long)]
    pub supergraph: Option<PathBuf>,
}

/// The two gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gateway {
    Ours,
    HiveRouter,
}

impl Gateway {
    fn name(self) -> &'static str {
        match self {
            Gateway::Ours => "ours",
            Gateway::HiveRouter => "hive_router",
        }
    }
}

/// Runs the benchmark and returns the `BENCH {json}` line, after printing the human-readable
/// lines.
pub async fn run(options: &Options) -> anyhow::Result<String> {
    anyhow::ensure!(options.clients > 0, "--clients must be at least 1");
    anyhow::ensure!(
        options.seconds > 0.0 && options.warmup >= 0.0,
        "--seconds must be positive and --warmup not negative"
    );
    anyhow::ensure!(
        !(options.skip_ours && options.skip_peer),
        "--skip-ours and --skip-peer together leave nothing to run"
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    if !options.skip_ours {
        ensure_our_gateway(&options.ours_bin).await?;
    }
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let client = reqwest::Client::new();

    let (running, subgraphs) = match &options.external_subgraphs {
        Some(template) => (None, external_subgraphs(template)),
        None => {
            let running = bench_subgraphs::start(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
                .await
                .context("starting the benchmark subgraphs")?;
            let urls = own_subgraphs(&running)?;
            (Some(running), urls)
        }
    };
    let supergraph = scratch.path().join("supergraph.graphql");
    let sdl = match &options.supergraph {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the supergraph {}", path.display()))?,
        None => compose(&client, &subgraphs).await?,
    };
    std::fs::write(&supergraph, sdl).context("writing the supergraph")?;
    let body = scratch.path().join("body.json");
    std::fs::write(&body, bench_subgraphs::request_body()).context("writing the request body")?;
    let expected = running
        .as_ref()
        .map(|_| bench_subgraphs::expected_response());

    let mut run = Run {
        options,
        client,
        scratch: scratch.path().to_owned(),
        supergraph,
        body,
        expected,
        reference: None,
    };
    let ours = if options.skip_ours {
        None
    } else {
        Some(run.measure(Gateway::Ours).await?)
    };
    let peer = if options.skip_peer {
        None
    } else {
        Some(run.measure(Gateway::HiveRouter).await?)
    };
    if let Some(running) = running {
        running.shutdown().await.context("stopping the subgraphs")?;
    }
    if let Some((rps_ratio, rss_ratio)) = gateway_report::ratios(ours.as_ref(), peer.as_ref()) {
        println!("{}", gateway_report::ratio_line(rps_ratio, rss_ratio));
    }
    let parameters = json!({
        "clients": options.clients,
        "seconds": options.seconds,
        "warmup_s": options.warmup,
        "subgraphs": options.external_subgraphs.as_deref().unwrap_or("bench-subgraphs"),
        "load_tool": "oha",
        "inbound_dedupe": false,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    });
    Ok(gateway_report::bench_line(
        ours.as_ref(),
        peer.as_ref(),
        parameters,
    ))
}

/// Fails with a clear message unless `bin gateway --help` works.
async fn ensure_our_gateway(bin: &Path) -> anyhow::Result<()> {
    let status = tokio::process::Command::new(bin)
        .args(["gateway", "--help"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
    match status {
        Ok(status) if status.success() => Ok(()),
        _ => anyhow::bail!(
            "our gateway is not available: `{} gateway --help` failed (the `gateway` \
             subcommand is missing or the binary is not built); pass --skip-ours to run \
             Hive Router alone",
            bin.display()
        ),
    }
}

fn own_subgraphs(running: &RunningSubgraphs) -> anyhow::Result<Vec<(String, String)>> {
    Subgraph::ALL
        .iter()
        .map(|subgraph| {
            let url = running
                .url(*subgraph)
                .with_context(|| format!("{} has no address", subgraph.name()))?;
            Ok((subgraph.name().to_owned(), url))
        })
        .collect()
}

fn external_subgraphs(template: &str) -> Vec<(String, String)> {
    Subgraph::ALL
        .iter()
        .map(|subgraph| {
            (
                subgraph.name().to_owned(),
                template.replace("{name}", subgraph.name()),
            )
        })
        .collect()
}

/// Composes the supergraph from the subgraphs' `_service { sdl }`.
async fn compose(
    client: &reqwest::Client,
    subgraphs: &[(String, String)],
) -> anyhow::Result<String> {
    let mut sources = Vec::with_capacity(subgraphs.len());
    for (name, url) in subgraphs {
        let sdl = federation::fetch_subgraph_sdl(client, url)
            .await
            .with_context(|| format!("reading the SDL of {name} at {url}"))?;
        sources.push(federation::SubgraphSource {
            name: name.clone(),
            url: url.clone(),
            sdl,
        });
    }
    federation::compose(&sources).context("composing the supergraph")
}

/// What every gateway's run shares.
struct Run<'a> {
    options: &'a Options,
    client: reqwest::Client,
    scratch: PathBuf,
    supergraph: PathBuf,
    body: PathBuf,
    /// The response our subgraphs' data calls for (none with external subgraphs).
    expected: Option<Value>,
    /// The first gateway's response, which the second must equal.
    reference: Option<(Gateway, Value)>,
}

impl Run<'_> {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/graphql", self.options.port)
    }

    /// Starts `gateway`, checks its answer, loads it and measures it, then stops it.
    async fn measure(&mut self, gateway: Gateway) -> anyhow::Result<GatewayFigures> {
        let name = gateway.name();
        ensure_port_free(self.options.port)?;
        let mut process = self.spawn(gateway)?;
        let outcome = self.measure_process(gateway, &mut process).await;
        let stopped = process.stop().await;
        let figures = outcome.with_context(|| format!("benchmarking {name}"))?;
        stopped?;
        println!("{}", gateway_report::human_line(name, &figures));
        Ok(figures)
    }

    async fn measure_process(
        &mut self,
        gateway: Gateway,
        process: &mut GatewayProcess,
    ) -> anyhow::Result<GatewayFigures> {
        let request = bench_subgraphs::request_body();
        process
            .wait_ready(|| answer(&self.client, self.url(), request.clone()))
            .await?;
        let response_bytes = self.verify(gateway, &request).await?;
        let spec = |seconds: f64| LoadSpec {
            oha: self.options.oha_bin.clone(),
            url: self.url(),
            body: self.body.clone(),
            clients: self.options.clients,
            duration: Duration::from_secs_f64(seconds),
        };
        if self.options.warmup > 0.0 {
            tracing::info!(
                gateway = gateway.name(),
                seconds = self.options.warmup,
                "warm-up"
            );
            load::run(&spec(self.options.warmup), &self.scratch)
                .await?
                .check(response_bytes)
                .context("during the warm-up")?;
        }
        tracing::info!(
            gateway = gateway.name(),
            seconds = self.options.seconds,
            clients = self.options.clients,
            "measuring"
        );
        let cpu_before = process.cpu_time()?;
        let outcome = load::run(&spec(self.options.seconds), &self.scratch).await?;
        let cpu = process.cpu_time()?.saturating_sub(cpu_before);
        outcome.check(response_bytes)?;
        // A last full check: the gateway still answers correctly after the load.
        anyhow::ensure!(
            self.verify(gateway, &request).await? == response_bytes,
            "the response changed size under load"
        );
        Ok(GatewayFigures {
            rps: outcome.rps,
            p95_ms: outcome.p95_ms,
            p50_ms: outcome.p50_ms,
            peak_rss_mb: process.peak_rss_bytes()? as f64 / (1024.0 * 1024.0),
            cpu_cores: cpu.as_secs_f64() / self.options.seconds,
            responses: outcome.responses,
            response_bytes,
        })
    }

    fn spawn(&self, gateway: Gateway) -> anyhow::Result<GatewayProcess> {
        let log = self.scratch.join(format!("{}.log", gateway.name()));
        let listen = format!("127.0.0.1:{}", self.options.port);
        match gateway {
            Gateway::Ours => {
                let mut args = vec![
                    "gateway".to_owned(),
                    "--supergraph".to_owned(),
                    self.supergraph.display().to_string(),
                    "--listen".to_owned(),
                    listen,
                ];
                args.extend(self.options.ours_args.iter().cloned());
                GatewayProcess::spawn(
                    "ours",
                    &self.options.ours_bin,
                    &args,
                    &[("RUST_LOG".to_owned(), "warn".to_owned())],
                    log,
                )
            }
            Gateway::HiveRouter => {
                let config = self.scratch.join("router.config.yaml");
                std::fs::write(
                    &config,
                    hive_router_config(&self.supergraph, self.options.port),
                )
                .context("writing router.config.yaml")?;
                GatewayProcess::spawn(
                    "hive_router",
                    &self.options.hive_router_bin,
                    &[],
                    &[(
                        "ROUTER_CONFIG_FILE_PATH".to_owned(),
                        config.display().to_string(),
                    )],
                    log,
                )
            }
        }
    }

    /// Checks one full response: 200, no `errors`, equal to the expected response (or to the
    /// other gateway's); returns its size in bytes.
    async fn verify(&mut self, gateway: Gateway, request: &str) -> anyhow::Result<u64> {
        let (status, bytes) = post(&self.client, self.url(), request.to_owned()).await?;
        anyhow::ensure!(status == 200, "{} answered {status}", gateway.name());
        let value: Value = serde_json::from_slice(&bytes).context("the response is not JSON")?;
        anyhow::ensure!(
            value.get("errors").is_none(),
            "{} answered with errors: {}",
            gateway.name(),
            value["errors"]
        );
        if let Some(expected) = &self.expected {
            anyhow::ensure!(
                &value == expected,
                "{}'s response differs from the subgraphs' data: {}",
                gateway.name(),
                first_difference(expected, &value, "")
            );
        }
        match &self.reference {
            Some((first, reference)) if *first != gateway => anyhow::ensure!(
                &value == reference,
                "{}'s response differs from {}'s: {}",
                gateway.name(),
                first.name(),
                first_difference(reference, &value, "")
            ),
            Some(_) => {}
            None => self.reference = Some((gateway, value)),
        }
        Ok(bytes.len() as u64)
    }
}

/// Refuses to start a gateway on a port something else holds.
fn ensure_port_free(port: u16) -> anyhow::Result<()> {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .map(drop)
        .with_context(|| format!("port {port} is taken; pass --port"))
}

async fn post(
    client: &reqwest::Client,
    url: String,
    body: String,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.bytes().await?.to_vec()))
}

/// Ready: the gateway answers the query with 200 (whether its answer is right is for
/// [`Run::verify`] to say, at once).
async fn answer(client: &reqwest::Client, url: String, body: String) -> anyhow::Result<()> {
    let (status, _) = post(client, url, body).await?;
    anyhow::ensure!(status == 200, "status {status}");
    Ok(())
}

/// The path of the first place where `actual` differs from `expected`, with both values.
fn first_difference(expected: &Value, actual: &Value, path: &str) -> String {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, value) in e {
                let inner = format!("{path}.{key}");
                match a.get(key) {
                    Some(other) if other == value => {}
                    Some(other) => return first_difference(value, other, &inner),
                    None => return format!("{inner} is missing"),
                }
            }
            match a.keys().find(|key| !e.contains_key(*key)) {
                Some(key) => format!("{path}.{key} is unexpected"),
                None => format!("{path} differs"),
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => e
            .iter()
            .zip(a)
            .enumerate()
            .find(|(_, (e, a))| e != a)
            .map(|(i, (e, a))| first_difference(e, a, &format!("{path}[{i}]")))
            .unwrap_or_else(|| format!("{path} differs")),
        _ => format!("{path}: expected {expected}, got {actual}"),
    }
}

/// Hive Router's configuration: the supergraph file, the port, few logs, and no inbound
/// request deduplication (outbound deduplication to subgraphs stays at its default).
fn hive_router_config(supergraph: &Path, port: u16) -> String {
    format!(
        "supergraph:\n  source: file\n  path: {}\nhttp:\n  host: 127.0.0.1\n  port: {port}\n\
         log:\n  level: warn\ntraffic_shaping:\n  router:\n    dedupe:\n      enabled: false\n",
        serde_json::to_string(&supergraph.display().to_string()).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_first_difference() {
        let expected = json!({ "data": { "users": [{ "id": "1" }, { "id": "2" }] } });
        let actual = json!({ "data": { "users": [{ "id": "1" }, { "id": "3" }] } });
        assert_eq!(
            first_difference(&expected, &actual, ""),
            r#".data.users[1].id: expected "2", got "3""#
        );
        let missing = json!({ "data": {} });
        assert_eq!(
            first_difference(&expected, &missing, ""),
            ".data.users is missing"
        );
    }

    #[test]
    fn hive_router_config_turns_inbound_dedupe_off() {
        let config = hive_router_config(Path::new("/tmp/x y/supergraph.graphql"), 14000);
        assert!(config.contains("path: \"/tmp/x y/supergraph.graphql\""));
        assert!(config.contains("port: 14000"));
        assert!(config.contains("dedupe:\n      enabled: false"));
    }

    #[test]
    fn external_subgraph_urls_fill_in_the_name() {
        let urls = external_subgraphs("http://127.0.0.1:4200/{name}");
        assert_eq!(
            urls[0],
            ("accounts".into(), "http://127.0.0.1:4200/accounts".into())
        );
        assert_eq!(urls[3].1, "http://127.0.0.1:4200/reviews");
    }
}
