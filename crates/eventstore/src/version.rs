//! Expected versions for optimistic concurrency, and global positions in `$all`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// What the writer believes about a stream's version before appending to it.
///
/// Stream versions count events: an empty (non-existent) stream has version 0 and its first
/// event has version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Append whatever the stream's version is.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must already exist.
    StreamExists,
    /// The stream's last event must have exactly this version (0 is the same as `NoStream`).
    Exact(u64),
}

impl ExpectedVersion {
    /// Decodes the integer encoding EventStoreDB clients use: -2 any, -1 no stream, -4 stream exists, n ≥ 0 exact (0-based last event).
    pub fn from_wire(value: i64) -> Result<Self, StoreError> {
        match value {
            -2 => Ok(Self::Any),
            -1 => Ok(Self::NoStream),
            -4 => Ok(Self::StreamExists),
            n if n >= 0 => Ok(Self::Exact(n as u64 + 1)),
            other => Err(StoreError::InvalidExpectedVersion(other.to_string())),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::NoStream => f.write_str("no_stream"),
            Self::StreamExists => f.write_str("stream_exists"),
            Self::Exact(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for ExpectedVersion {
    type Err = StoreError;

    /// Parses `any`, `no_stream`, `stream_exists` or a non-negative version number.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "any" => Ok(Self::Any),
            "no_stream" => Ok(Self::NoStream),
            "stream_exists" => Ok(Self::StreamExists),
            other => other
                .parse::<u64>()
                .map(Self::Exact)
                .map_err(|_| StoreError::InvalidExpectedVersion(crate::stream::truncate(other))),
        }
    }
}

/// A place in the global `$all` order. Positions increase in commit-visibility order and may
/// have gaps; `Position::START` is before every event.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Position(pub u64);

impl Position {
    /// Before the first event.
    pub const START: Position = Position(0);
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_expected_versions() {
        assert_eq!(
            "any".parse::<ExpectedVersion>().unwrap(),
            ExpectedVersion::Any
        );
        assert_eq!(
            "no_stream".parse::<ExpectedVersion>().unwrap(),
            ExpectedVersion::NoStream
        );
        assert_eq!(
            "stream_exists".parse::<ExpectedVersion>().unwrap(),
            ExpectedVersion::StreamExists
        );
        assert_eq!(
            "7".parse::<ExpectedVersion>().unwrap(),
            ExpectedVersion::Exact(7)
        );
        for bad in ["", "-1", "maybe", "1.5", "Any"] {
            let err = bad.parse::<ExpectedVersion>().unwrap_err();
            assert_eq!(err.code(), "INVALID_EXPECTED_VERSION", "{bad}");
        }
    }

    #[test]
    fn decodes_wire_encoding() {
        assert_eq!(
            ExpectedVersion::from_wire(-2).unwrap(),
            ExpectedVersion::Any
        );
        assert_eq!(
            ExpectedVersion::from_wire(-1).unwrap(),
            ExpectedVersion::NoStream
        );
        assert_eq!(
            ExpectedVersion::from_wire(-4).unwrap(),
            ExpectedVersion::StreamExists
        );
        assert_eq!(
            ExpectedVersion::from_wire(0).unwrap(),
            ExpectedVersion::Exact(1)
        );
        assert!(ExpectedVersion::from_wire(-3).is_err());
        assert!(ExpectedVersion::from_wire(-100).is_err());
    }
}
