//! The review subgraph: the `Review` entity, batch review ingestion, semantic search,
//! recommendations, RAG answers and chat over Redis Streams.
//!
//! It never sends personal data of authors to a language model. Built in the
//! review-intelligence issue; empty until then.
