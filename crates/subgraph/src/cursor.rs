//! Opaque Relay cursors: a page position as base64url JSON, so clients neither build nor read
//! them and the position's shape can change without changing the API.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Longest cursor accepted, in bytes.
pub const MAX_CURSOR_LEN: usize = 1_024;

/// The opaque text handed to clients for `position`.
pub fn encode<T: Serialize>(position: &T) -> String {
    // Positions are plain structs of strings and numbers, which always serialise.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(position).unwrap_or_default())
}

/// Reads a cursor a client sent back; `None` when it is not one [`encode`] made for a `T`.
pub fn decode<T: DeserializeOwned>(raw: &str) -> Option<T> {
    if raw.len() > MAX_CURSOR_LEN {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Position {
        at: String,
        id: String,
    }

    #[test]
    fn round_trips_and_refuses_forgeries() {
        let position = Position {
            at: "2026-01-01T00:00:00.000000Z".into(),
            id: "o-1".into(),
        };
        let text = encode(&position);
        assert!(!text.contains("2026"), "{text}");
        assert_eq!(decode::<Position>(&text), Some(position));
        for bad in ["", "!!!", "e30", &"A".repeat(2_000)] {
            assert_eq!(decode::<Position>(bad), None, "{bad}");
        }
    }
}
