//! Per-operation metrics: `gateway_operations_total{operation,kind,outcome}` and the
//! `gateway_operation_duration_seconds` histogram.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Label for requests refused before an operation was known.
pub const UNKNOWN: &str = "unknown";
/// Label for operation names past the cardinality cap.
const OTHER: &str = "other";
/// Distinct operation names kept as label values.
const MAX_OPERATION_NAMES: usize = 500;
/// Longest operation name kept as a label value.
const MAX_NAME_LEN: usize = 64;

/// How a request ended, as the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Data and no errors.
    Success,
    /// Data with errors (some subgraph field failed).
    Partial,
    /// Errors and no data.
    Error,
    /// Refused before execution (limits, auth, rate, parse, validation).
    Rejected,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Partial => "partial",
            Self::Error => "error",
            Self::Rejected => "rejected",
        }
    }

    /// The outcome of an executed response.
    pub fn of(response: &federation::Response) -> Self {
        let has_data = response.data.as_ref().is_some_and(|d| !d.is_null());
        match (has_data, response.errors.is_empty()) {
            (true, true) => Self::Success,
            (true, false) => Self::Partial,
            (false, _) => Self::Error,
        }
    }
}

/// Keeps operation-name label values bounded: names past the cap become `other`.
#[derive(Debug, Clone, Default)]
pub struct OperationNames {
    seen: Arc<Mutex<HashSet<String>>>,
}

impl OperationNames {
    /// The label value for `name`.
    pub fn label(&self, name: Option<&str>) -> String {
        let Some(name) = name.filter(|n| !n.is_empty() && n.len() <= MAX_NAME_LEN) else {
            return if name.is_some_and(|n| !n.is_empty()) {
                OTHER.to_owned()
            } else {
                "anonymous".to_owned()
            };
        };
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.contains(name) {
            return name.to_owned();
        }
        if seen.len() >= MAX_OPERATION_NAMES {
            return OTHER.to_owned();
        }
        seen.insert(name.to_owned());
        name.to_owned()
    }
}

/// Records one finished operation.
pub fn record(operation: String, kind: &'static str, outcome: Outcome, elapsed: Duration) {
    let labels = [
        ("operation", operation),
        ("kind", kind.to_owned()),
        ("outcome", outcome.as_str().to_owned()),
    ];
    metrics::counter!("gateway_operations_total", &labels).increment(1);
    metrics::histogram!("gateway_operation_duration_seconds", &labels[..2])
        .record(elapsed.as_secs_f64());
}

/// The `kind` label of an operation kind.
pub fn kind_label(kind: federation::OperationKind) -> &'static str {
    match kind {
        federation::OperationKind::Query => "query",
        federation::OperationKind::Mutation => "mutation",
        federation::OperationKind::Subscription => "subscription",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_label_cardinality() {
        let names = OperationNames::default();
        assert_eq!(names.label(None), "anonymous");
        assert_eq!(names.label(Some(&"x".repeat(65))), "other");
        for i in 0..MAX_OPERATION_NAMES {
            assert_eq!(names.label(Some(&format!("Op{i}"))), format!("Op{i}"));
        }
        assert_eq!(names.label(Some("OneTooMany")), "other");
        assert_eq!(
            names.label(Some("Op7")),
            "Op7",
            "known names keep their label"
        );
    }
}
