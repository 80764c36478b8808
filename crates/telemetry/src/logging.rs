//! Log lines: the output format and the level filter.

use tracing::Subscriber;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, fmt};

use crate::TelemetryError;

/// How log lines are written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (the default, for machines).
    Json,
    /// Multi-line, coloured output for humans (`LOG_FORMAT=pretty`).
    Pretty,
}

impl LogFormat {
    /// Reads `LOG_FORMAT`: `pretty` selects [`LogFormat::Pretty`], anything else JSON.
    pub fn from_env() -> Self {
        Self::parse(std::env::var("LOG_FORMAT").ok().as_deref())
    }

    /// The lowercase name of this format, as `LOG_FORMAT` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Pretty => "pretty",
        }
    }

    fn parse(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            Some(v) if v.eq_ignore_ascii_case("pretty") => Self::Pretty,
            _ => Self::Json,
        }
    }
}

/// The level filter from `RUST_LOG`, `info` when it is unset.
pub(crate) fn env_filter() -> Result<EnvFilter, TelemetryError> {
    Ok(EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env()?)
}

/// The layer that writes log lines to stdout in `format`.
pub(crate) fn fmt_layer<S>(format: LogFormat) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    match format {
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stdout)
            .boxed(),
        LogFormat::Pretty => fmt::layer().pretty().with_writer(std::io::stdout).boxed(),
    }
}

#[cfg(test)]
mod tests {
    use super::LogFormat;

    #[test]
    fn pretty_only_when_asked() {
        assert_eq!(LogFormat::parse(Some("pretty")), LogFormat::Pretty);
        assert_eq!(LogFormat::parse(Some(" PRETTY ")), LogFormat::Pretty);
        assert_eq!(LogFormat::parse(Some("json")), LogFormat::Json);
        assert_eq!(LogFormat::parse(Some("")), LogFormat::Json);
        assert_eq!(LogFormat::parse(None), LogFormat::Json);
    }
}
