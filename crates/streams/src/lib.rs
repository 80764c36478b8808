//! The stream-broker port: append-only streams with consumer groups, as the AI chat uses them.
//!
//! Layout: [`StreamBroker`] is the port (append, consumer groups, pending-entry claims,
//! history reads and live tails); [`RedisBroker`] is the production adapter over Redis
//! Streams and [`MemoryBroker`] the embedded, in-process one with the same semantics (one
//! contract test suite runs against both). [`StreamEntry`] is what reads hand out;
//! [`with_trace`] and [`StreamEntry::trace_context`] carry W3C trace context in entry
//! fields. This crate knows nothing of chat sessions or GraphQL; it moves string fields.

mod broker;
mod entry;
mod error;
mod id;
mod memory;
mod redis_broker;
mod redis_reply;
mod trace;

pub use broker::StreamBroker;
pub use entry::StreamEntry;
pub use error::StreamError;
pub use memory::MemoryBroker;
pub use redis_broker::RedisBroker;
pub use trace::{is_trace_field, with_trace};
