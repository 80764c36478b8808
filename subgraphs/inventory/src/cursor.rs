//! Opaque Relay cursors: a page position `(name, id)` as base64url JSON, so clients cannot
//! build or read them and the order can change without breaking the API shape.

use serde::{Deserialize, Serialize};

use crate::error::InventoryError;

/// A position in the catalog's `(name, id)` order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Format version.
    v: u8,
    /// The product name at the position.
    pub name: String,
    /// The product id at the position.
    pub id: String,
}

impl Cursor {
    /// The position just after the product `(name, id)`.
    pub fn after(name: &str, id: &str) -> Self {
        Self {
            v: 1,
            name: name.to_owned(),
            id: id.to_owned(),
        }
    }

    /// The opaque text handed to clients.
    pub fn encode(&self) -> String {
        subgraph::cursor::encode(self)
    }

    /// Reads a cursor a client sent back (`field` names the argument in errors).
    pub fn decode(field: &'static str, raw: &str) -> Result<Self, InventoryError> {
        subgraph::cursor::decode::<Self>(raw)
            .filter(|cursor| cursor.v == 1)
            .ok_or_else(|| InventoryError::invalid(field, "not a cursor this API returned"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_forgeries() {
        let cursor = Cursor::after("Strawberry Cake", "p-1");
        let text = cursor.encode();
        assert!(!text.contains("Strawberry"));
        assert_eq!(Cursor::decode("after", &text).unwrap(), cursor);
        for bad in ["", "!!!", "e30", &"A".repeat(2_000)] {
            let err = Cursor::decode("after", bad).unwrap_err();
            assert_eq!(err.code(), "BAD_USER_INPUT");
            assert_eq!(err.field(), Some("after"));
        }
    }
}
