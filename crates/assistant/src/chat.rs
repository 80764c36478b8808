//! Chat sessions over the stream broker: open, send, read history, subscribe to replies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt as _;
use futures::stream::BoxStream;
use streams::StreamBroker;
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::answer::Question;
use crate::chat_entry::{ChatEvent, HistoryEntry, HistoryItem, Inbound};
use crate::error::AssistantError;
use crate::session::{ChatStreams, SessionId, WORKER_GROUP, check_user};

/// How many history entries a session keeps (about; older ones are trimmed).
pub const HISTORY_MAX_LEN: usize = 2_000;
/// How many reply events a session keeps (about; older ones are trimmed).
pub const REPLIES_MAX_LEN: usize = 20_000;
/// How many inbound messages are kept (about; a message is trimmed long after it is acked).
pub const INBOUND_MAX_LEN: usize = 100_000;
/// How many history entries one read fetches.
const HISTORY_PAGE: usize = 500;
/// How many session owners are remembered between calls.
const OWNER_CACHE: usize = 10_000;

/// A live feed of a session's reply events; it ends after an error, or when dropped.
pub type ChatEvents = BoxStream<'static, Result<ChatEvent, AssistantError>>;

/// A message accepted for answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentMessage {
    /// The session it was sent to.
    pub session: SessionId,
    /// Its id; reply events for it carry the same id.
    pub message_id: Uuid,
}

/// The chat front: sessions owned by users, whose messages a [`crate::ChatWorker`] answers.
pub struct Chat {
    broker: Arc<dyn StreamBroker>,
    streams: ChatStreams,
    owners: Mutex<HashMap<SessionId, String>>,
    /// Set once the workers' consumer group exists, so no message is sent before it.
    group_ready: OnceCell<()>,
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chat")
            .field("streams", &self.streams)
            .finish_non_exhaustive()
    }
}

impl Chat {
    /// A chat keeping its sessions in `broker` under `streams`.
    pub fn new(broker: Arc<dyn StreamBroker>, streams: ChatStreams) -> Self {
        Self {
            broker,
            streams,
            owners: Mutex::new(HashMap::new()),
            group_ready: OnceCell::new(),
        }
    }

    /// Opens a new session owned by `user`.
    pub async fn open(&self, user: &str) -> Result<SessionId, AssistantError> {
        let user = check_user(user)?;
        let session = SessionId::new();
        let meta = self.streams.meta(session);
        self.broker
            .append(&meta, &[("owner".to_owned(), user.to_owned())], None)
            .await?;
        // The first entry decides: with random ids a second writer is all but impossible,
        // but reading back keeps ownership a property of the stream alone.
        match self.owner(session).await? {
            Some(owner) if owner == user => Ok(session),
            _ => Err(AssistantError::Forbidden),
        }
    }

    /// Sends `text` from `user` to `session` for answering; it is in the session's history
    /// before this returns.
    #[tracing::instrument(skip_all, fields(session = %session))]
    pub async fn send(
        &self,
        user: &str,
        session: &str,
        text: &str,
    ) -> Result<SentMessage, AssistantError> {
        let session = self.authorize(user, session).await?;
        let text = Question::parse(text)?;
        let message_id = Uuid::now_v7();
        let item = HistoryItem::Message {
            text: text.as_str().to_owned(),
        };
        self.broker
            .append(
                &self.streams.history(session),
                &item.fields(message_id)?,
                Some(HISTORY_MAX_LEN),
            )
            .await?;
        // A group created after this append would start after it and never see it.
        let inbound_stream = self.streams.inbound();
        self.group_ready
            .get_or_try_init(|| self.broker.ensure_group(&inbound_stream, WORKER_GROUP))
            .await?;
        let inbound = Inbound {
            session,
            user: user.to_owned(),
            message_id,
            text: text.as_str().to_owned(),
        };
        self.broker
            .append(&inbound_stream, &inbound.fields(), Some(INBOUND_MAX_LEN))
            .await?;
        tracing::debug!(%message_id, "chat message sent");
        Ok(SentMessage {
            session,
            message_id,
        })
    }

    /// The session's messages, answers and failures, oldest first.
    pub async fn history(
        &self,
        user: &str,
        session: &str,
    ) -> Result<Vec<HistoryEntry>, AssistantError> {
        let session = self.authorize(user, session).await?;
        let stream = self.streams.history(session);
        let mut entries = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .broker
                .range(&stream, after.as_deref(), HISTORY_PAGE)
                .await?;
            for entry in &page {
                entries.push(HistoryEntry::read(entry)?);
            }
            match page.last() {
                Some(last) if page.len() == HISTORY_PAGE => after = Some(last.id.clone()),
                _ => return Ok(entries),
            }
        }
    }

    /// The session's reply events from now on, or those after event id `after`.
    pub async fn subscribe(
        &self,
        user: &str,
        session: &str,
        after: Option<&str>,
    ) -> Result<ChatEvents, AssistantError> {
        let session = self.authorize(user, session).await?;
        let tail = self
            .broker
            .tail(&self.streams.replies(session), after.map(str::to_owned))
            .await
            .map_err(|err| match err {
                streams::StreamError::InvalidId(_) => {
                    AssistantError::BadInput("the event cursor is not a chat event id".to_owned())
                }
                other => other.into(),
            })?;
        let events = tail.map(|entry| ChatEvent::read(&entry?));
        // An error ends the feed, as the port's tails do.
        Ok(events
            .scan(false, |failed, event| {
                let item = (!*failed).then(|| {
                    *failed = event.is_err();
                    event
                });
                futures::future::ready(item)
            })
            .boxed())
    }

    /// The session `session` if `user` owns it: `BAD_USER_INPUT` for a malformed id,
    /// `NOT_FOUND` for an unknown session, `FORBIDDEN` for another user's.
    async fn authorize(&self, user: &str, session: &str) -> Result<SessionId, AssistantError> {
        let user = check_user(user)?;
        let session = SessionId::parse(session)?;
        match self.owner(session).await? {
            Some(owner) if owner == user => Ok(session),
            Some(_) => Err(AssistantError::Forbidden),
            None => Err(AssistantError::SessionNotFound),
        }
    }

    /// The session's owner: the first entry of its meta stream (remembered once read, as
    /// it never changes).
    async fn owner(&self, session: SessionId) -> Result<Option<String>, AssistantError> {
        if let Some(owner) = self.cached_owners().get(&session) {
            return Ok(Some(owner.clone()));
        }
        let first = self
            .broker
            .range(&self.streams.meta(session), None, 1)
            .await?;
        let Some(entry) = first.first() else {
            return Ok(None);
        };
        let owner = entry
            .field("owner")
            .ok_or_else(|| {
                AssistantError::Corrupt(format!("session {session} has no owner entry"))
            })?
            .to_owned();
        let mut owners = self.cached_owners();
        if owners.len() >= OWNER_CACHE {
            owners.clear();
        }
        owners.insert(session, owner.clone());
        Ok(Some(owner))
    }

    fn cached_owners(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, String>> {
        self.owners.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
