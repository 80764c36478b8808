//! Chat sessions: their ids, who may use them, and the streams they live in.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::AssistantError;

/// The consumer group of the workers that answer chat messages.
pub const WORKER_GROUP: &str = "assistant";
/// The longest user id accepted, in characters.
const MAX_USER_CHARS: usize = 256;

/// A chat session id (a UUID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionId(Uuid);

impl SessionId {
    /// A fresh random session id.
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    /// Accepts `text` as a session id or says why not (`BAD_USER_INPUT`).
    pub fn parse(text: &str) -> Result<Self, AssistantError> {
        Uuid::parse_str(text.trim())
            .map(Self)
            .map_err(|_| AssistantError::BadInput("the session id is not a UUID".to_owned()))
    }

    /// The UUID.
    pub fn uuid(self) -> Uuid {
        self.0
    }
}

impl Default for SessionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Accepts `user` as the id of a signed-in user or says why not (`BAD_USER_INPUT`).
pub(crate) fn check_user(user: &str) -> Result<&str, AssistantError> {
    if user.is_empty()
        || user.chars().count() > MAX_USER_CHARS
        || user.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(AssistantError::BadInput(format!(
            "the user id must be 1 to {MAX_USER_CHARS} characters without spaces"
        )));
    }
    Ok(user)
}

/// The names of the streams the chat uses, all under one key prefix.
///
/// `{prefix}chat.inbound` holds every message to answer; per session,
/// `{prefix}chat.session.{id}.meta` holds its owner (one entry, never trimmed),
/// `.history` its messages and final answers, `.replies` the answer chunks as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatStreams {
    prefix: String,
}

impl ChatStreams {
    /// Stream names under `prefix` (empty in production; tests use a unique one).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The stream of messages waiting for an answer.
    pub fn inbound(&self) -> String {
        format!("{}chat.inbound", self.prefix)
    }

    /// The stream whose first entry names the session's owner.
    pub fn meta(&self, session: SessionId) -> String {
        format!("{}chat.session.{session}.meta", self.prefix)
    }

    /// The stream of the session's messages and final answers.
    pub fn history(&self, session: SessionId) -> String {
        format!("{}chat.session.{session}.history", self.prefix)
    }

    /// The stream of the session's answer chunks and completions.
    pub fn replies(&self, session: SessionId) -> String {
        format!("{}chat.session.{session}.replies", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_and_users_are_checked() {
        let id = SessionId::new();
        assert_eq!(SessionId::parse(&id.to_string()).unwrap(), id);
        for bad in ["", "abc", "123e4567-e89b-12d3-a456-42661417400"] {
            assert_eq!(SessionId::parse(bad).unwrap_err().code(), "BAD_USER_INPUT");
        }
        assert!(check_user("cognito|abc-123").is_ok());
        for bad in ["", "a b", "a\nb"] {
            assert_eq!(check_user(bad).unwrap_err().code(), "BAD_USER_INPUT");
        }
    }

    #[test]
    fn stream_names_share_the_prefix() {
        let streams = ChatStreams::new("t1:");
        let id = SessionId::parse("123e4567-e89b-12d3-a456-426614174000").unwrap();
        assert_eq!(streams.inbound(), "t1:chat.inbound");
        assert_eq!(
            streams.replies(id),
            "t1:chat.session.123e4567-e89b-12d3-a456-426614174000.replies"
        );
    }
}
