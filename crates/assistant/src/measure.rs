//! The assistant's metrics (`metrics` crate; exported by whichever recorder the binary installs).

use std::time::Duration;

/// Answers produced, by `model` and `outcome` (`ok`, `error`, `no_reviews`).
pub const ANSWERS_TOTAL: &str = "assistant_answers_total";
/// Seconds from the question to the complete answer, by `model`.
pub const ANSWER_SECONDS: &str = "assistant_answer_seconds";
/// Chat messages a worker took over from a consumer that stopped answering.
pub const CLAIMED_TOTAL: &str = "assistant_chat_claimed_total";
/// Chat messages a worker finished, by `outcome` (`answered`, `failed`, `duplicate`, `malformed`).
pub const CHAT_MESSAGES_TOTAL: &str = "assistant_chat_messages_total";

/// Records one finished answer.
pub(crate) fn answered(model: &str, outcome: &'static str, took: Option<Duration>) {
    metrics::counter!(ANSWERS_TOTAL, "model" => model.to_owned(), "outcome" => outcome)
        .increment(1);
    if let Some(took) = took {
        metrics::histogram!(ANSWER_SECONDS, "model" => model.to_owned()).record(took.as_secs_f64());
    }
}

/// Records chat messages claimed from a stopped consumer.
pub(crate) fn claimed(count: usize) {
    metrics::counter!(CLAIMED_TOTAL).increment(u64::try_from(count).unwrap_or(u64::MAX));
}

/// Records one chat message a worker is done with.
pub(crate) fn chat_message(outcome: &'static str) {
    metrics::counter!(CHAT_MESSAGES_TOTAL, "outcome" => outcome).increment(1);
}
