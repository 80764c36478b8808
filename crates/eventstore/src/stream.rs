//! Stream ids: `category-id`, validated when parsed.

use std::fmt;

use crate::error::StoreError;

/// Longest stream id accepted, in bytes.
pub const MAX_STREAM_ID_LEN: usize = 200;

/// A validated stream id such as `order-0193...`; the part before the first `-` is its category.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct StreamId(String);

impl<'de> serde::Deserialize<'de> for StreamId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(raw).map_err(serde::de::Error::custom)
    }
}

impl StreamId {
    /// Parses a stream id: 1..=200 bytes of ASCII letters, digits and `-_.:@`, not starting with `$`.
    pub fn parse(raw: impl Into<String>) -> Result<Self, StoreError> {
        let raw = raw.into();
        let invalid = |reason: &str| StoreError::InvalidStreamId {
            stream: truncate(&raw),
            reason: reason.to_owned(),
        };
        if raw.is_empty() {
            return Err(invalid("empty"));
        }
        if raw.len() > MAX_STREAM_ID_LEN {
            return Err(invalid("longer than 200 bytes"));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@')))
        {
            return Err(invalid(&format!("character {bad:?} is not allowed")));
        }
        if raw.starts_with('-') || raw.ends_with('-') {
            return Err(invalid("must not start or end with '-'"));
        }
        Ok(Self(raw))
    }

    /// Builds `category-id` from its parts.
    pub fn of(category: &str, id: impl fmt::Display) -> Result<Self, StoreError> {
        Self::parse(format!("{category}-{id}"))
    }

    /// The category: the part before the first `-` (the whole id when it has none).
    pub fn category(&self) -> &str {
        self.0.split_once('-').map(|(c, _)| c).unwrap_or(&self.0)
    }

    /// The id within the category: the part after the first `-`.
    pub fn entity_id(&self) -> &str {
        self.0.split_once('-').map(|(_, id)| id).unwrap_or("")
    }

    /// Wraps an id read back from the store, which was validated when written.
    pub(crate) fn trusted(raw: String) -> Self {
        Self(raw)
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for StreamId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Keeps error messages short when the input is huge.
pub(crate) fn truncate(raw: &str) -> String {
    raw.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_category_and_id() {
        let s = StreamId::parse("order-0193a").unwrap();
        assert_eq!(s.category(), "order");
        assert_eq!(s.entity_id(), "0193a");
        let s = StreamId::parse("saga-order-1").unwrap();
        assert_eq!(s.category(), "saga");
        assert_eq!(s.entity_id(), "order-1");
    }

    #[test]
    fn rejects_bad_ids() {
        for bad in ["", "-x", "x-", "a b", "ord\u{e9}r-1", "$all", "a/b", "a\nb"] {
            let err = StreamId::parse(bad).unwrap_err();
            assert_eq!(err.code(), "INVALID_STREAM_ID", "{bad:?}");
        }
        assert!(StreamId::parse("x".repeat(201)).is_err());
        assert!(StreamId::parse("x".repeat(200)).is_ok());
    }
}
