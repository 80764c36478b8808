//! The embedding model a vector index is built for.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The embedding model (name, version, vector dimension) every vector in an index comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelTag {
    /// Model name, e.g. `multilingual-e5-small`.
    pub name: String,
    /// Model version, e.g. `2024-06`.
    pub version: String,
    /// Length of every vector the model produces.
    pub dimension: usize,
}

impl ModelTag {
    /// A model tag from its name, version and dimension.
    pub fn new(name: impl Into<String>, version: impl Into<String>, dimension: usize) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            dimension,
        }
    }

    /// The `name@version` key stored beside every vector.
    pub fn key(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// A file-system-safe directory name for this tag (`name@version`, other characters as `_`).
    pub fn dir_name(&self) -> String {
        self.key()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}

impl fmt::Display for ModelTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{} (dim {})", self.name, self.version, self.dimension)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_name_keeps_name_and_version_and_replaces_path_characters() {
        let tag = ModelTag::new("intfloat/multilingual-e5-small", "v1.0", 384);
        assert_eq!(tag.key(), "intfloat/multilingual-e5-small@v1.0");
        assert_eq!(tag.dir_name(), "intfloat_multilingual-e5-small@v1.0");
    }

    #[test]
    fn dir_name_cannot_escape_the_root() {
        let tag = ModelTag::new("..", "/etc", 3);
        assert!(!tag.dir_name().contains('/'));
    }
}
