//! The AI assistant: grounded answers over reviews (RAG) and the chat pipeline that
//! delivers them over a stream broker.
//!
//! Layout: [`Retriever`] is the port to review search (built with the review subgraph);
//! [`Answerer`] retrieves, masks personal data ([`privacy`]), formats passages
//! ([`passage`]), asks an [`llm::Llm`] and keeps only citations that name a retrieved
//! review ([`CitationFilter`]); [`ExtractiveLlm`] is the local answerer used when no
//! OpenAI-compatible API is configured ([`choose_llm`]). [`Chat`] owns sessions (append messages, read
//! history, subscribe to replies) and [`ChatWorker`] answers inbound messages in a
//! consumer group, taking over messages of crashed workers; both speak only the
//! [`streams::StreamBroker`] port, so Redis and the in-process broker behave alike.
//! This crate does no embedding or vector search and knows nothing of GraphQL.

mod answer;
mod chat;
mod chat_entry;
mod citation;
mod error;
mod extractive;
mod measure;
mod model_choice;
pub mod passage;
pub mod privacy;
mod retrieval;
pub mod search_text;
mod sentence;
mod session;
mod worker;

pub use answer::{
    Answer, AnswerEvent, AnswerEvents, Answerer, Citation, DEFAULT_TOP_K, MAX_PRODUCT_ID_CHARS,
    MAX_QUESTION_CHARS, NO_REVIEWS_ANSWER, NO_REVIEWS_MODEL, Question, SYSTEM_PROMPT,
};
pub use chat::{Chat, ChatEvents, HISTORY_MAX_LEN, INBOUND_MAX_LEN, REPLIES_MAX_LEN, SentMessage};
pub use chat_entry::{ChatEvent, ChatEventKind, HistoryEntry, HistoryItem};
pub use citation::CitationFilter;
pub use error::AssistantError;
pub use extractive::{EXTRACTIVE_MODEL, ExtractiveLlm};
pub use measure::{ANSWER_SECONDS, ANSWERS_TOTAL, CHAT_MESSAGES_TOTAL, CLAIMED_TOTAL};
pub use model_choice::choose_llm;
pub use retrieval::{Labels, RetrievalError, RetrievedReview, Retriever, Sentiment};
pub use session::{ChatStreams, SessionId, WORKER_GROUP};
pub use worker::{ChatWorker, WorkerConfig};
