//! Review-search evaluation: the hand-written Korean test collection in this directory
//! (products, reviews, graded queries; see README.md) ranked by semantic search and by a BM25
//! baseline, scored by recall@5, nDCG@10 and MRR.
//!
//! Layout: [`set`] reads and checks the collection; [`metrics`] holds the metric definitions;
//! [`lexical`] is BM25 over character bigrams; [`semantic`] embeds through any
//! [`model::Embedder`] and ranks exactly or through the HNSW vector index; [`fusion`] fuses
//! both into a hybrid ranking (for comparison); [`evaluation`] runs them all and reports. It measures only: it never writes to the collection.

pub mod error;
pub mod evaluation;
pub mod fusion;
pub mod lexical;
pub mod metrics;
pub mod ranking;
pub mod semantic;
pub mod set;

pub use error::EvalError;
pub use evaluation::{Evaluation, SystemReport, evaluate, evaluate_embedded, query_texts};
pub use metrics::Scores;
pub use semantic::IndexKind;
pub use set::{DocumentText, EvalSet};
