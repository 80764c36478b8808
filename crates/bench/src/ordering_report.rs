//! The `ordering` benchmark's figures: human-readable lines and the `BENCH {json}` line.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::hops::Hop;
use crate::ordering_client::{ClientStats, STAGES};
use crate::profile::{Activity, CpuSplit, DbCounters};

/// Goal on the reference machine (2 cores): completed orders per second.
pub const GOAL_ORDERS_PER_S: f64 = 500.0;
/// Goal on the reference machine: 99th percentile of place → PAID, in milliseconds.
pub const GOAL_P99_MS: f64 = 250.0;
/// The units of the figures.
pub const UNITS: &str = "orders/s (PAID orders per measured second); latencies in ms from the placeOrder call to observing PAID";

/// JSON keys of [`STAGES`].
const STAGE_KEYS: [&str; 4] = [
    "place_call",
    "placed_to_payment_pending",
    "confirm_call",
    "confirmed_to_paid",
];

/// Percentiles of a histogram of microseconds, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// Reads the percentiles of `h` (all zero when it is empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1_000.0;
        Self {
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }

    fn line(&self) -> String {
        format!(
            "p50 {:>8.1} ms  p95 {:>8.1} ms  p99 {:>8.1} ms  max {:>8.1} ms",
            self.p50, self.p95, self.p99, self.max
        )
    }
}

/// Everything one run measured.
pub struct Outcome<'a> {
    /// All clients' stats, merged.
    pub stats: &'a ClientStats,
    /// Concurrent clients.
    pub clients: usize,
    /// Length of the measured window in seconds.
    pub seconds: f64,
    /// Change signals the order watch missed because it lagged.
    pub lagged: u64,
    /// CPU used during the window, when `/proc` could be read.
    pub cpu: Option<CpuSplit>,
    /// CPU used with the platform up but no client running, when measured.
    pub idle_cpu: Option<CpuSplit>,
    /// What the benchmark database did during the window, when it could be read.
    pub db: Option<DbCounters>,
    /// Events appended during the window by type, when they could be read.
    pub events: Option<Vec<(String, i64)>>,
    /// `pg_stat_activity` samples of the window, when sampling was on.
    pub activity: Option<Activity>,
    /// Gaps between the events of the orders placed in the window, when they could be read.
    pub hops: Option<Vec<Hop>>,
    /// The message bus the platform ran on: `kafka`, or `in-process` for the diagnostic run.
    pub bus: &'static str,
}

impl Outcome<'_> {
    /// Completed orders per measured second.
    pub fn orders_per_s(&self) -> f64 {
        self.stats.completed as f64 / self.seconds.max(1e-9)
    }

    /// Errors of the measured window by code.
    pub fn errors_by_code(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for ((_, code), n) in &self.stats.errors {
            *out.entry(code.clone()).or_default() += n;
        }
        out
    }

    /// The human-readable lines.
    pub fn human_lines(&self) -> Vec<String> {
        let s = self.stats;
        let total = Latency::of(&s.total);
        let verdict = |met: bool| if met { "met" } else { "MISSED" };
        let mut lines = vec![
            format!(
                "ordering  throughput {:>10.1} orders/s  ({} PAID in {:.1} s with {} clients, {} bus; goal ≥ {}: {})",
                round1(self.orders_per_s()),
                s.completed,
                self.seconds,
                self.clients,
                self.bus,
                GOAL_ORDERS_PER_S,
                verdict(self.orders_per_s() >= GOAL_ORDERS_PER_S),
            ),
            format!(
                "ordering  place → PAID        {}  (goal p99 ≤ {} ms: {})",
                total.line(),
                GOAL_P99_MS,
                verdict(s.completed > 0 && total.p99 <= GOAL_P99_MS),
            ),
        ];
        for (stage, h) in STAGES.iter().zip(&s.stages) {
            lines.push(format!(
                "ordering    {stage:<26}  {}",
                Latency::of(h).line()
            ));
        }
        let errors = if s.errors.is_empty() {
            "none".to_owned()
        } else {
            s.errors
                .iter()
                .map(|((stage, code), n)| format!("{stage} {code}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        lines.push(format!(
            "ordering  errors {errors}  (warm-up errors: {}; PAID outside the window: {})",
            s.warmup_errors, s.completed_outside
        ));
        let orders = (s.completed + s.completed_outside).max(1) as f64;
        lines.push(format!(
            "ordering  waiting: {:.2} order lookups per order (served from the cache when it holds the signalled version) ({} woken by a change, {} by the fallback poll), {:.2} confirm retries per order (ORDER_NOT_FOUND), {} change signals lost to lag",
            s.reads as f64 / orders,
            s.signalled,
            s.fallbacks,
            s.confirm_retries as f64 / orders,
            self.lagged,
        ));
        if let Some(hops) = &self.hops {
            lines.push(
                "ordering  hops between components (recorded_at of each event, orders placed in the window):"
                    .to_owned(),
            );
            for hop in hops {
                lines.push(format!(
                    "ordering    p50 {:>8.1} ms  p99 {:>8.1} ms  max {:>8.1} ms  {} (n={})",
                    hop.p50_ms, hop.p99_ms, hop.max_ms, hop.description, hop.count
                ));
            }
        }
        if let Some(cpu) = &self.idle_cpu {
            lines.push(cpu_line("with the platform idle (no client yet)", cpu));
        }
        if let Some(cpu) = &self.cpu {
            lines.push(cpu_line("over the window", cpu));
        }
        let per_order = |n: i64| n as f64 / s.completed.max(1) as f64;
        if let Some(events) = &self.events {
            let total: i64 = events.iter().map(|(_, n)| n).sum();
            let types: Vec<String> = events
                .iter()
                .map(|(t, n)| format!("{t} {:.1}", per_order(*n)))
                .collect();
            lines.push(format!(
                "ordering  events appended per PAID order over the window: {:.1} ({})",
                per_order(total),
                types.join(", ")
            ));
        }
        if let Some(db) = &self.db {
            lines.push(format!(
                "ordering  postgres per PAID order over the window: {:.1} transactions ({:.1} rolled back), {:.1} rows inserted, {:.1} updated, {:.0} returned by scans",
                per_order(db.commits + db.rollbacks),
                per_order(db.rollbacks),
                per_order(db.inserted),
                per_order(db.updated),
                per_order(db.returned),
            ));
        }
        if let Some(activity) = &self.activity {
            let states: Vec<String> = activity
                .averages(&activity.states)
                .into_iter()
                .map(|(state, avg)| format!("{state} {avg:.2}"))
                .collect();
            lines.push(format!(
                "ordering  pg_stat_activity, benchmark db backends on average over {} samples: {}; active backends of other databases {:.2}",
                activity.samples,
                states.join(", "),
                activity.other_databases_active as f64 / activity.samples.max(1) as f64,
            ));
            for (statement, avg) in activity.averages(&activity.statements).into_iter().take(8) {
                lines.push(format!("ordering    active {avg:>5.2}  {statement}"));
            }
        }
        lines
    }

    /// The final `BENCH {json}` line.
    pub fn bench_line(&self) -> String {
        let total = Latency::of(&self.stats.total);
        let stages: Vec<(&str, String)> = STAGE_KEYS
            .iter()
            .zip(&self.stats.stages)
            .map(|(key, h)| {
                let l = Latency::of(h);
                let figures = [
                    ("p50_ms", json!(round1(l.p50)).to_string()),
                    ("p99_ms", json!(round1(l.p99)).to_string()),
                ];
                (*key, object(&figures))
            })
            .collect();
        let fields: Vec<(&str, String)> = vec![
            ("name", json!("ordering").to_string()),
            (
                "orders_per_s",
                json!(round1(self.orders_per_s())).to_string(),
            ),
            ("p50_ms", json!(round1(total.p50)).to_string()),
            ("p95_ms", json!(round1(total.p95)).to_string()),
            ("p99_ms", json!(round1(total.p99)).to_string()),
            ("max_ms", json!(round1(total.max)).to_string()),
            ("clients", json!(self.clients).to_string()),
            ("seconds", json!(round1(self.seconds)).to_string()),
            ("bus", json!(self.bus).to_string()),
            ("errors", json!(self.errors_by_code()).to_string()),
            (
                "goals",
                json!({"orders_per_s": GOAL_ORDERS_PER_S as u64, "p99_ms": GOAL_P99_MS as u64})
                    .to_string(),
            ),
            ("stages", object(&stages)),
            ("units", json!(UNITS).to_string()),
        ];
        format!("BENCH {}", object(&fields))
    }
}

/// `ordering  cpu WHEN, in cores of 2: busy 1.80; group 0.50; ...`.
fn cpu_line(when: &str, cpu: &CpuSplit) -> String {
    let groups: Vec<String> = cpu
        .groups
        .iter()
        .filter(|(_, cores)| *cores >= 0.005)
        .map(|(group, cores)| format!("{group} {cores:.2}"))
        .collect();
    format!(
        "ordering  cpu {when}, in cores of {}: busy {:.2}; {}",
        cpu.cpus,
        cpu.busy,
        groups.join("; ")
    )
}

/// A JSON object of already-encoded values, keys in the order given (serde_json's map would
/// sort them).
fn object(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(key, value)| format!("{}:{value}", Value::String((*key).to_owned())))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_line_has_the_figures_in_order() {
        let mut stats = ClientStats::empty();
        for ms in 1..=100u64 {
            stats.total.saturating_record(ms * 1_000);
        }
        stats.completed = 1_000;
        stats.errors.insert(("confirm", "PROVIDER_ERROR".into()), 3);
        let outcome = Outcome {
            stats: &stats,
            clients: 32,
            seconds: 20.0,
            lagged: 0,
            cpu: None,
            idle_cpu: None,
            db: None,
            events: None,
            activity: None,
            hops: None,
            bus: "kafka",
        };
        let line = outcome.bench_line();
        assert!(
            line.starts_with(r#"BENCH {"name":"ordering","orders_per_s":50.0,"p50_ms":"#),
            "{line}"
        );
        let json: Value = serde_json::from_str(line.strip_prefix("BENCH ").unwrap()).unwrap();
        assert_eq!(json["clients"], 32);
        assert_eq!(json["seconds"], 20.0);
        assert_eq!(json["bus"], "kafka");
        assert_eq!(json["errors"]["PROVIDER_ERROR"], 3);
        assert_eq!(json["goals"]["orders_per_s"], 500);
        assert_eq!(json["goals"]["p99_ms"], 250);
        assert_eq!(json["p50_ms"], 50.0);
        assert_eq!(json["max_ms"], 100.0);
        assert!(json["stages"]["confirm_call"]["p99_ms"].is_number());
        assert!(
            line.contains(r#""stages":{"place_call":{"p50_ms":"#),
            "{line}"
        );
        assert!(!outcome.human_lines().is_empty());
    }
}
