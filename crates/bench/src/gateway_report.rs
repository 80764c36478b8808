//! The `gateway` benchmark's figures: one human-readable line per gateway, the comparison, and
//! the final `BENCH {json}` line.

use serde_json::{Value, json};

/// Goal for ours ÷ Hive Router's requests per second.
pub const RPS_RATIO_GOAL: f64 = 1.0;
/// Goal for ours ÷ Hive Router's peak RSS (at most).
pub const RSS_RATIO_GOAL: f64 = 1.0;

/// What one gateway did under the constant load.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayFigures {
    /// Responses per second.
    pub rps: f64,
    /// 95th percentile latency, in milliseconds.
    pub p95_ms: f64,
    /// Median latency, in milliseconds.
    pub p50_ms: f64,
    /// Peak resident set size of the gateway process over its life, in MiB.
    pub peak_rss_mb: f64,
    /// CPU the gateway process used during the measured window, in cores.
    pub cpu_cores: f64,
    /// Responses in the measured window (every one 200, of `response_bytes`).
    pub responses: u64,
    /// Size of every response body, in bytes.
    pub response_bytes: u64,
}

impl GatewayFigures {
    fn to_json(&self) -> Value {
        json!({
            "rps": round(self.rps, 1),
            "p95_ms": round(self.p95_ms, 2),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "p50_ms": round(self.p50_ms, 2),
            "cpu_cores": round(self.cpu_cores, 2),
            "responses": self.responses,
            "response_bytes": self.response_bytes,
        })
    }
}

/// `ours         1,234.5 rps  p95 41.25 ms  p50 30.00 ms  peak RSS 35.2 MB  1.21 cores  (74,070 responses of 88,123 B, all 200)`.
pub fn human_line(name: &str, figures: &GatewayFigures) -> String {
    format!(
        "{name:<12} {:>9.1} rps  p95 {:>7.2} ms  p50 {:>7.2} ms  peak RSS {:>7.1} MB  {:.2} cores  ({} responses of {} B, all 200)",
        figures.rps,
        figures.p95_ms,
        figures.p50_ms,
        figures.peak_rss_mb,
        figures.cpu_cores,
        figures.responses,
        figures.response_bytes,
    )
}

/// Ours ÷ Hive Router's rps and peak RSS, when both ran.
pub fn ratios(ours: Option<&GatewayFigures>, peer: Option<&GatewayFigures>) -> Option<(f64, f64)> {
    let (ours, peer) = (ours?, peer?);
    (peer.rps > 0.0 && peer.peak_rss_mb > 0.0)
        .then(|| (ours.rps / peer.rps, ours.peak_rss_mb / peer.peak_rss_mb))
}

/// `rps_ratio 1.04 (goal ≥ 1.0: met)  rss_ratio 0.62 (goal ≤ 1.0: met)`.
pub fn ratio_line(rps_ratio: f64, rss_ratio: f64) -> String {
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    format!(
        "rps_ratio {rps_ratio:.3} (goal ≥ {RPS_RATIO_GOAL}: {})  rss_ratio {rss_ratio:.3} (goal ≤ {RSS_RATIO_GOAL}: {})",
        verdict(rps_ratio >= RPS_RATIO_GOAL),
        verdict(rss_ratio <= RSS_RATIO_GOAL),
    )
}

/// The final line: `name`, each gateway's figures (`null` when skipped), the ratios, goals,
/// units and the parameters of the run, in that order.
pub fn bench_line(
    ours: Option<&GatewayFigures>,
    peer: Option<&GatewayFigures>,
    parameters: Value,
) -> String {
    let ratios = ratios(ours, peer);
    let fields = [
        ("name", json!("gateway")),
        ("ours", ours.map_or(Value::Null, GatewayFigures::to_json)),
        (
            "hive_router",
            peer.map_or(Value::Null, GatewayFigures::to_json),
        ),
        ("rps_ratio", json!(ratios.map(|(rps, _)| round(rps, 3)))),
        ("rss_ratio", json!(ratios.map(|(_, rss)| round(rss, 3)))),
        (
            "goals",
            json!({ "rps_ratio_min": RPS_RATIO_GOAL, "rss_ratio_max": RSS_RATIO_GOAL }),
        ),
        (
            "units",
            json!({
                "rps": "responses/s",
                "p95_ms": "ms",
                "p50_ms": "ms",
                "peak_rss_mb": "MiB (VmHWM)",
                "cpu_cores": "cores",
                "response_bytes": "bytes"
            }),
        ),
        ("parameters", parameters),
    ];
    // Written field by field so the order above survives whatever map serde_json uses.
    let body: Vec<String> = fields
        .iter()
        .map(|(key, value)| format!("{}:{value}", Value::String((*key).to_owned())))
        .collect();
    format!("BENCH {{{}}}", body.join(","))
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(rps: f64, rss: f64) -> GatewayFigures {
        GatewayFigures {
            rps,
            p95_ms: 40.123,
            p50_ms: 30.0,
            peak_rss_mb: rss,
            cpu_cores: 1.5,
            responses: 1000,
            response_bytes: 88_000,
        }
    }

    #[test]
    fn bench_line_compares_ours_with_hive_router() {
        let ours = figures(1100.0, 30.0);
        let peer = figures(1000.0, 60.0);
        let line = bench_line(Some(&ours), Some(&peer), json!({ "clients": 50 }));
        assert!(
            line.starts_with(r#"BENCH {"name":"gateway","ours":{"#),
            "{line}"
        );
        let value: Value = serde_json::from_str(line.strip_prefix("BENCH ").unwrap()).unwrap();
        assert_eq!(value["ours"]["rps"], 1100.0);
        assert_eq!(value["hive_router"]["p95_ms"], 40.12);
        assert_eq!(value["hive_router"]["peak_rss_mb"], 60.0);
        assert_eq!(value["rps_ratio"], 1.1);
        assert_eq!(value["rss_ratio"], 0.5);
        assert_eq!(value["parameters"]["clients"], 50);
        assert!(ratio_line(1.1, 0.5).contains("goal ≥ 1: met"));
        assert!(ratio_line(0.9, 1.5).contains("MISSED"));
    }

    #[test]
    fn bench_line_without_the_peer_has_no_ratio() {
        let ours = figures(1100.0, 30.0);
        let line = bench_line(Some(&ours), None, json!({}));
        let value: Value = serde_json::from_str(line.strip_prefix("BENCH ").unwrap()).unwrap();
        assert_eq!(value["hive_router"], Value::Null);
        assert_eq!(value["rps_ratio"], Value::Null);
    }
}
