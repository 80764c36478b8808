//! The model service: Korean sentence embeddings and review aspect/sentiment labels over gRPC
//! (`proto/model/v1/model.proto`), with dynamic batching and back-pressure.
//!
//! It must stay stateless and know nothing of orders or reviews beyond the text it is given.
//! Built in the review-intelligence issue; empty until then.
