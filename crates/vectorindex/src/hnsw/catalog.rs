//! Model-versioned HNSW indexes side by side under one root, with a `CURRENT` pointer file.
//!
//! Layout: `{root}/{model-name}@{version}/` per model, `{root}/CURRENT` naming the one in use.
//! Promotion writes `CURRENT.tmp` and renames it over `CURRENT`, so readers see the old or the
//! new pointer, never a torn one.

use super::storage::{read_json, write_json};
use super::{HnswConfig, HnswIndex};
use crate::error::IndexError;
use crate::model::ModelTag;
use crate::port::IndexCatalog;
use async_trait::async_trait;
use std::path::PathBuf;

const POINTER_FILE: &str = "CURRENT";

/// The directory of embedded indexes, one per model tag.
#[derive(Debug, Clone)]
pub struct HnswCatalog {
    root: PathBuf,
    config: HnswConfig,
}

impl HnswCatalog {
    /// A catalog rooted at `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>, config: HnswConfig) -> Self {
        Self {
            root: root.into(),
            config,
        }
    }

    /// The directory of `tag`'s index.
    pub fn dir_of(&self, tag: &ModelTag) -> PathBuf {
        self.root.join(tag.dir_name())
    }
}

#[async_trait]
impl IndexCatalog for HnswCatalog {
    type Index = HnswIndex;

    async fn open(&self, tag: &ModelTag) -> Result<HnswIndex, IndexError> {
        HnswIndex::open(self.dir_of(tag), tag.clone(), self.config.clone()).await
    }

    async fn current(&self) -> Result<Option<ModelTag>, IndexError> {
        let path = self.root.join(POINTER_FILE);
        super::blocking(move || read_json(&path)).await
    }

    async fn promote(&self, tag: &ModelTag) -> Result<(), IndexError> {
        let (root, tag) = (self.root.clone(), tag.clone());
        super::blocking(move || {
            std::fs::create_dir_all(&root)?;
            write_json(&root.join(POINTER_FILE), &tag)
        })
        .await
    }

    async fn retire(&self, tag: &ModelTag) -> Result<(), IndexError> {
        if self.current().await?.as_ref() == Some(tag) {
            return Err(IndexError::InUse(tag.clone()));
        }
        let dir = self.dir_of(tag);
        super::blocking(move || match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        })
        .await
    }
}
