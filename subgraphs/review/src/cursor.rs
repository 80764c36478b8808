//! Opaque Relay cursors over a product's reviews: the position `(created_at, id)` as base64url
//! JSON, so clients neither build nor read them.

use serde::{Deserialize, Serialize};

/// A position in the newest-first `(created_at, id)` order of reviews.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Format version.
    v: u8,
    /// `created_at` of the review at the position (RFC 3339, as stored).
    pub at: String,
    /// Id of the review at the position.
    pub id: String,
}

impl Cursor {
    /// The position of the review `(at, id)`.
    pub fn after(at: &str, id: &str) -> Self {
        Self {
            v: 1,
            at: at.to_owned(),
            id: id.to_owned(),
        }
    }

    /// The opaque text handed to clients.
    pub fn encode(&self) -> String {
        subgraph::cursor::encode(self)
    }

    /// Reads a cursor a client sent back; `None` when it is not one this API returned.
    pub fn decode(raw: &str) -> Option<Self> {
        subgraph::cursor::decode::<Self>(raw).filter(|cursor| cursor.v == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_forgeries() {
        let cursor = Cursor::after("2026-01-01T00:00:00.000000Z", "r-1");
        let text = cursor.encode();
        assert!(!text.contains("2026"));
        assert_eq!(Cursor::decode(&text), Some(cursor));
        for bad in ["", "!!!", "e30", &"A".repeat(2_000)] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
