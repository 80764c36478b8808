//! Figures, their goals, the human-readable lines and the `BENCH {json}` line.

use serde_json::{Map, Value, json};

use crate::phases::Measured;

/// Goals on the reference machine (2 cores), by figure key.
pub const GOALS: [(&str, f64); 4] = [
    ("batched_events_per_s", 50_000.0),
    ("single_appends_per_s", 5_000.0),
    ("catchup_events_per_s", 200_000.0),
    ("relayed_events_per_s", 50_000.0),
];

/// The units of every figure.
pub const UNITS: &str = "events/s (appends/s for single_appends_per_s)";

/// The figures of one adapter, in the order they were measured.
#[derive(Debug, Default)]
pub struct AdapterReport {
    adapter: &'static str,
    figures: Vec<(&'static str, Measured)>,
}

impl AdapterReport {
    /// An empty report for `adapter`.
    pub fn new(adapter: &'static str) -> Self {
        Self {
            adapter,
            figures: Vec::new(),
        }
    }

    /// Records a figure and prints its human-readable line.
    pub fn record(&mut self, key: &'static str, measured: Measured) {
        println!("{}", human_line(self.adapter, key, &measured));
        self.figures.push((key, measured));
    }

    /// The figures as a JSON object of rounded rates.
    pub fn to_json(&self) -> Value {
        let map: Map<String, Value> = self
            .figures
            .iter()
            .map(|(key, m)| ((*key).to_owned(), json!(m.per_second().round() as u64)))
            .collect();
        Value::Object(map)
    }
}

/// `postgres  batched_events_per_s   61,234 events/s  (200,000 in 3.27 s; goal ≥ 50,000: met)`.
fn human_line(adapter: &str, key: &str, m: &Measured) -> String {
    let unit = if key == "single_appends_per_s" {
        "appends/s"
    } else {
        "events/s"
    };
    let goal = GOALS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, goal)| {
            let verdict = if m.per_second() >= *goal {
                "met"
            } else {
                "MISSED"
            };
            format!("; goal ≥ {}: {verdict}", thousands(*goal))
        })
        .unwrap_or_default();
    format!(
        "{adapter:<9} {key:<24} {:>10} {unit:<9} ({} in {:.2} s{goal})",
        thousands(m.per_second()),
        thousands(m.count as f64),
        m.elapsed.as_secs_f64(),
    )
}

/// The final `BENCH {json}` line: `name` first, then each adapter's figures, the units, the
/// goals and the parameters of the run.
pub fn bench_line(adapters: &[&AdapterReport], parameters: Value) -> String {
    let goals: Map<String, Value> = GOALS
        .iter()
        .map(|(key, goal)| ((*key).to_owned(), json!(*goal as u64)))
        .collect();
    let mut fields = vec![("name".to_owned(), json!("eventstore"))];
    fields.extend(adapters.iter().map(|r| (r.adapter.to_owned(), r.to_json())));
    fields.push(("units".to_owned(), json!(UNITS)));
    fields.push(("goals".to_owned(), Value::Object(goals)));
    fields.push(("parameters".to_owned(), parameters));
    // Written field by field so the order above survives (serde_json's map sorts its keys).
    let body: Vec<String> = fields
        .iter()
        .map(|(key, value)| format!("{}:{value}", Value::String(key.clone())))
        .collect();
    format!("BENCH {{{}}}", body.join(","))
}

/// A rate rounded to a whole number with thousands separators.
fn thousands(value: f64) -> String {
    let digits = (value.round() as u64).to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn formats_thousands() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000.0), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }

    #[test]
    fn bench_line_holds_figures_units_and_goals() {
        let mut report = AdapterReport::new("sqlite");
        report.record(
            "batched_events_per_s",
            Measured {
                count: 1_000,
                elapsed: Duration::from_millis(10),
            },
        );
        let line = bench_line(&[&report], json!({}));
        let json: Value = serde_json::from_str(line.strip_prefix("BENCH ").unwrap()).unwrap();
        assert_eq!(json["name"], "eventstore");
        assert_eq!(json["sqlite"]["batched_events_per_s"], 100_000);
        assert_eq!(json["goals"]["single_appends_per_s"], 5_000);
        assert_eq!(json["units"], UNITS);
        assert!(
            line.starts_with(r#"BENCH {"name":"eventstore","sqlite":{"#),
            "{line}"
        );
    }
}
