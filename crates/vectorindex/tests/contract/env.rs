//! Adapter environments for the contract suite.

use std::future::Future;
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};
use vectorindex::atlas::AtlasConfig;
use vectorindex::{AtlasCatalog, HnswCatalog, HnswConfig, IndexCatalog};

/// A fresh, isolated catalog of one adapter.
pub trait Env: Sized {
    /// The adapter's catalog.
    type Catalog: IndexCatalog;
    /// Starts an environment, or says why it cannot run here.
    async fn start() -> Result<Self, String>;
    /// The catalog under test.
    fn catalog(&self) -> &Self::Catalog;
    /// Deletes what the test created.
    async fn stop(self);
}

/// Runs one case against a fresh environment, or prints why it was skipped.
pub async fn run<E, F>(name: &str, case: F)
where
    E: Env,
    F: for<'a> FnOnce(&'a E::Catalog) -> Pin<Box<dyn Future<Output = ()> + 'a>>,
{
    let env = match E::start().await {
        Ok(env) => env,
        Err(reason) => {
            println!("skipped: {name}: {reason}");
            return;
        }
    };
    case(env.catalog()).await;
    env.stop().await;
}

/// The embedded HNSW catalog in a temporary directory.
pub struct HnswEnv {
    _dir: tempfile::TempDir,
    catalog: HnswCatalog,
}

impl Env for HnswEnv {
    type Catalog = HnswCatalog;

    async fn start() -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        // A tiny exact-scoring limit forces filtered searches through the graph (and its
        // fallback), the path that must still return exactly k.
        let config = HnswConfig {
            exact_filter_limit: 8,
            ..HnswConfig::default()
        };
        Ok(Self {
            catalog: HnswCatalog::new(dir.path(), config),
            _dir: dir,
        })
    }

    fn catalog(&self) -> &HnswCatalog {
        &self.catalog
    }

    async fn stop(self) {}
}

/// The Atlas catalog in a database of its own, when `MONGODB_URI` is set.
pub struct AtlasEnv {
    db: mongodb::Database,
    catalog: AtlasCatalog,
}

impl Env for AtlasEnv {
    type Catalog = AtlasCatalog;

    async fn start() -> Result<Self, String> {
        let uri = std::env::var("MONGODB_URI")
            .map_err(|_| "MONGODB_URI is not set, no MongoDB Atlas to test against".to_string())?;
        let client = mongodb::Client::with_uri_str(&uri)
            .await
            .map_err(|e| format!("MONGODB_URI unusable: {e}"))?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let db = client.database(&format!("vectorindex_{}_{nanos}", std::process::id()));
        Ok(Self {
            catalog: AtlasCatalog::new(db.clone(), AtlasConfig::default()),
            db,
        })
    }

    fn catalog(&self) -> &AtlasCatalog {
        &self.catalog
    }

    async fn stop(self) {
        if let Err(e) = self.db.drop().await {
            eprintln!("dropping test database: {e}");
        }
    }
}
