//! What chat stream entries hold: inbound messages, history entries and reply events,
//! and how each is written as stream fields and read back.

use streams::StreamEntry;
use uuid::Uuid;

use crate::answer::{Answer, Citation};
use crate::error::AssistantError;
use crate::session::SessionId;

/// A message waiting for an answer, as it travels on the inbound stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inbound {
    pub(crate) session: SessionId,
    pub(crate) user: String,
    pub(crate) message_id: Uuid,
    pub(crate) text: String,
}

impl Inbound {
    pub(crate) fn fields(&self) -> Vec<(String, String)> {
        vec![
            pair("session", self.session.to_string()),
            pair("user", self.user.clone()),
            pair("message_id", self.message_id.to_string()),
            pair("text", self.text.clone()),
        ]
    }

    pub(crate) fn read(entry: &StreamEntry) -> Result<Self, AssistantError> {
        Ok(Self {
            session: SessionId::parse(field(entry, "session")?)
                .map_err(|_| corrupt(entry, "session"))?,
            user: field(entry, "user")?.to_owned(),
            message_id: message_id(entry)?,
            text: field(entry, "text")?.to_owned(),
        })
    }
}

/// One entry of a session's history, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    /// The stream entry id (`<milliseconds>-<sequence>`): when it was written, and a cursor.
    pub id: String,
    /// The message this entry is, or answers.
    pub message_id: Uuid,
    /// What happened.
    pub item: HistoryItem,
}

/// What a history entry records.
#[derive(Debug, Clone, PartialEq)]
pub enum HistoryItem {
    /// The user's message.
    Message {
        /// Its text.
        text: String,
    },
    /// The complete answer to a message.
    Answer(Answer),
    /// Answering a message failed.
    Failed {
        /// The error code.
        code: String,
    },
}

impl HistoryItem {
    pub(crate) fn fields(&self, message_id: Uuid) -> Result<Vec<(String, String)>, AssistantError> {
        let mut fields = vec![pair("message_id", message_id.to_string())];
        match self {
            Self::Message { text } => {
                fields.push(pair("kind", "message".to_owned()));
                fields.push(pair("text", text.clone()));
            }
            Self::Answer(answer) => {
                fields.push(pair("kind", "answer".to_owned()));
                fields.push(pair("text", answer.text.clone()));
                fields.push(pair("model", answer.model.clone()));
                fields.push(pair("citations", citations_json(&answer.citations)?));
            }
            Self::Failed { code } => {
                fields.push(pair("kind", "failed".to_owned()));
                fields.push(pair("code", code.clone()));
            }
        }
        Ok(fields)
    }
}

impl HistoryEntry {
    pub(crate) fn read(entry: &StreamEntry) -> Result<Self, AssistantError> {
        let item = match field(entry, "kind")? {
            "message" => HistoryItem::Message {
                text: field(entry, "text")?.to_owned(),
            },
            "answer" => HistoryItem::Answer(Answer {
                text: field(entry, "text")?.to_owned(),
                citations: citations(entry)?,
                model: field(entry, "model")?.to_owned(),
            }),
            "failed" => HistoryItem::Failed {
                code: field(entry, "code")?.to_owned(),
            },
            _ => return Err(corrupt(entry, "kind")),
        };
        Ok(Self {
            id: entry.id.clone(),
            message_id: message_id(entry)?,
            item,
        })
    }
}

/// One event of a session's reply stream.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatEvent {
    /// The stream entry id: pass it to `Chat::subscribe` to resume after this event.
    pub id: String,
    /// The message being answered.
    pub message_id: Uuid,
    /// What happened.
    pub kind: ChatEventKind,
}

/// What a reply event says.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEventKind {
    /// The next piece of the answer.
    Chunk {
        /// The text to append.
        text: String,
    },
    /// The answer is being written again from the start (a worker stopped midway): drop
    /// the chunks received so far for this message.
    Restarted,
    /// The answer is complete.
    Done {
        /// The model that wrote it.
        model: String,
        /// The reviews it cites.
        citations: Vec<Citation>,
    },
    /// Answering failed.
    Failed {
        /// The error code.
        code: String,
    },
}

impl ChatEventKind {
    pub(crate) fn fields(&self, message_id: Uuid) -> Result<Vec<(String, String)>, AssistantError> {
        let mut fields = vec![pair("message_id", message_id.to_string())];
        match self {
            Self::Chunk { text } => {
                fields.push(pair("kind", "chunk".to_owned()));
                fields.push(pair("text", text.clone()));
            }
            Self::Restarted => fields.push(pair("kind", "restarted".to_owned())),
            Self::Done { model, citations } => {
                fields.push(pair("kind", "done".to_owned()));
                fields.push(pair("model", model.clone()));
                fields.push(pair("citations", citations_json(citations)?));
            }
            Self::Failed { code } => {
                fields.push(pair("kind", "failed".to_owned()));
                fields.push(pair("code", code.clone()));
            }
        }
        Ok(fields)
    }

    /// Whether this event ends the answer to its message.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Done { .. } | Self::Failed { .. })
    }
}

impl ChatEvent {
    pub(crate) fn read(entry: &StreamEntry) -> Result<Self, AssistantError> {
        let kind = match field(entry, "kind")? {
            "chunk" => ChatEventKind::Chunk {
                text: field(entry, "text")?.to_owned(),
            },
            "restarted" => ChatEventKind::Restarted,
            "done" => ChatEventKind::Done {
                model: field(entry, "model")?.to_owned(),
                citations: citations(entry)?,
            },
            "failed" => ChatEventKind::Failed {
                code: field(entry, "code")?.to_owned(),
            },
            _ => return Err(corrupt(entry, "kind")),
        };
        Ok(Self {
            id: entry.id.clone(),
            message_id: message_id(entry)?,
            kind,
        })
    }
}

/// The message id field of `entry`, without reading the rest.
pub(crate) fn message_id(entry: &StreamEntry) -> Result<Uuid, AssistantError> {
    Uuid::parse_str(field(entry, "message_id")?).map_err(|_| corrupt(entry, "message_id"))
}

fn field<'a>(entry: &'a StreamEntry, name: &'static str) -> Result<&'a str, AssistantError> {
    entry.field(name).ok_or_else(|| corrupt(entry, name))
}

fn citations(entry: &StreamEntry) -> Result<Vec<Citation>, AssistantError> {
    serde_json::from_str(field(entry, "citations")?).map_err(|_| corrupt(entry, "citations"))
}

fn citations_json(citations: &[Citation]) -> Result<String, AssistantError> {
    serde_json::to_string(citations)
        .map_err(|err| AssistantError::Corrupt(format!("citations cannot be written: {err}")))
}

fn corrupt(entry: &StreamEntry, name: &'static str) -> AssistantError {
    AssistantError::Corrupt(format!("entry {} has no valid {name:?} field", entry.id))
}

fn pair(name: &str, value: String) -> (String, String) {
    (name.to_owned(), value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieval::RetrievedReview;

    fn entry(fields: Vec<(String, String)>) -> StreamEntry {
        StreamEntry {
            id: "1-0".to_owned(),
            fields,
        }
    }

    #[test]
    fn events_and_history_round_trip() {
        let message_id = Uuid::now_v7();
        let citation = Citation {
            number: 1,
            review: RetrievedReview {
                id: "r".into(),
                product_id: "p".into(),
                product_name: "케이크".into(),
                rating: 5,
                text: "맛있어요".into(),
                labels: None,
                score: 0.5,
            },
        };
        for kind in [
            ChatEventKind::Chunk {
                text: "안녕".into(),
            },
            ChatEventKind::Restarted,
            ChatEventKind::Done {
                model: "m".into(),
                citations: vec![citation.clone()],
            },
            ChatEventKind::Failed {
                code: "LLM_TIMEOUT".into(),
            },
        ] {
            let read = ChatEvent::read(&entry(kind.fields(message_id).unwrap())).unwrap();
            assert_eq!(read.kind, kind);
            assert_eq!(read.message_id, message_id);
        }
        let answer = HistoryItem::Answer(Answer {
            text: "덜 달아요 [1]".into(),
            citations: vec![citation],
            model: "m".into(),
        });
        let read = HistoryEntry::read(&entry(answer.fields(message_id).unwrap())).unwrap();
        assert_eq!(read.item, answer);
    }

    #[test]
    fn malformed_entries_are_typed_errors() {
        let bad = entry(vec![
            pair("kind", "chunk".into()),
            pair("message_id", "x".into()),
        ]);
        assert_eq!(ChatEvent::read(&bad).unwrap_err().code(), "CHAT_CORRUPT");
        let unknown = entry(vec![pair("kind", "??".into())]);
        assert_eq!(
            HistoryEntry::read(&unknown).unwrap_err().code(),
            "CHAT_CORRUPT"
        );
        assert!(Inbound::read(&entry(Vec::new())).is_err());
    }
}
