//! GraphQL for chat with the assistant: `startChatSession`, `sendChatMessage`, the
//! `chatHistory` query and the `chatMessages` subscription (the `Subscription` root, exported
//! in the federation SDL so the gateway serves it). Sessions belong to the signed-in user who
//! started them: anyone else gets `FORBIDDEN`, anonymous callers `UNAUTHENTICATED`.

use assistant::{ChatEvent, ChatEventKind, Citation, HistoryEntry, HistoryItem};
use async_graphql::{Context, Enum, ID, Object, SimpleObject, Subscription};
use futures::{Stream, StreamExt as _};

use crate::error::ServiceError;
use crate::schema::{ReviewNode, gql_error, identity, intelligence};
use crate::search_schema::review_nodes;

/// Longest event cursor accepted (a stream entry id).
const MAX_CURSOR_LEN: usize = 64;

/// A chat session with the assistant.
#[derive(SimpleObject)]
pub struct ChatSession {
    /// Its id, for `sendChatMessage`, `chatHistory` and `chatMessages`.
    pub id: ID,
}

/// A message accepted for answering.
#[derive(SimpleObject)]
pub struct ChatMessageSent {
    /// The session.
    pub session_id: ID,
    /// The message; reply events for it carry the same id.
    pub message_id: ID,
}

/// What a reply event says.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ChatEventType {
    /// The next piece of the answer (`text`).
    Chunk,
    /// The answer is written again from the start: drop this message's chunks so far.
    Restarted,
    /// The answer is complete (`model`, `citations`).
    Done,
    /// Answering failed (`code`).
    Failed,
}

/// One event of a session's replies.
#[derive(SimpleObject)]
pub struct ChatReplyEvent {
    /// The event id: pass it as `after` to resume after this event.
    pub id: String,
    /// The message being answered.
    pub message_id: ID,
    /// What happened.
    pub kind: ChatEventType,
    /// The text to append (chunks).
    pub text: Option<String>,
    /// The model that wrote the answer (done).
    pub model: Option<String>,
    /// The reviews the answer cites (done).
    pub citations: Vec<ReviewNode>,
    /// The error code (failed).
    pub code: Option<String>,
}

/// What a history entry records.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ChatHistoryKind {
    /// The user's message.
    Message,
    /// The complete answer to a message.
    Answer,
    /// Answering a message failed.
    Failed,
}

/// One entry of a session's history, oldest first.
#[derive(SimpleObject)]
pub struct ChatHistoryEntry {
    /// The entry id (a stream id: when it was written).
    pub id: String,
    /// The message this entry is, or answers.
    pub message_id: ID,
    /// What it records.
    pub kind: ChatHistoryKind,
    /// The message or answer text.
    pub text: Option<String>,
    /// The model that wrote the answer.
    pub model: Option<String>,
    /// The reviews the answer cites.
    pub citations: Vec<ReviewNode>,
    /// The error code of a failure.
    pub code: Option<String>,
}

fn caller<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a str> {
    auth::require(identity(ctx))
        .map(|who| who.sub.as_str())
        .map_err(|e| gql_error(&e.into()))
}

fn ids(citations: &[Citation]) -> Vec<String> {
    citations.iter().map(|c| c.review.id.clone()).collect()
}

/// Chat queries.
#[derive(Default)]
pub struct ChatQuery;

#[Object]
impl ChatQuery {
    /// The caller's session's messages, answers and failures, oldest first.
    async fn chat_history(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
    ) -> async_graphql::Result<Vec<ChatHistoryEntry>> {
        let user = caller(ctx)?;
        let entries = intelligence(ctx)?
            .chat
            .history(user, &session_id)
            .await
            .map_err(|e| gql_error(&e.into()))?;
        let mut out = Vec::with_capacity(entries.len());
        for HistoryEntry {
            id,
            message_id,
            item,
        } in entries
        {
            let message_id = ID(message_id.to_string());
            out.push(match item {
                HistoryItem::Message { text } => ChatHistoryEntry {
                    id,
                    message_id,
                    kind: ChatHistoryKind::Message,
                    text: Some(text),
                    model: None,
                    citations: Vec::new(),
                    code: None,
                },
                HistoryItem::Answer(answer) => ChatHistoryEntry {
                    id,
                    message_id,
                    kind: ChatHistoryKind::Answer,
                    citations: review_nodes(ctx, &ids(&answer.citations)).await?,
                    text: Some(answer.text),
                    model: Some(answer.model),
                    code: None,
                },
                HistoryItem::Failed { code } => ChatHistoryEntry {
                    id,
                    message_id,
                    kind: ChatHistoryKind::Failed,
                    text: None,
                    model: None,
                    citations: Vec::new(),
                    code: Some(code),
                },
            });
        }
        Ok(out)
    }
}

/// Chat mutations.
#[derive(Default)]
pub struct ChatMutation;

#[Object]
impl ChatMutation {
    /// Starts a chat session owned by the caller.
    async fn start_chat_session(&self, ctx: &Context<'_>) -> async_graphql::Result<ChatSession> {
        let user = caller(ctx)?;
        let session = intelligence(ctx)?
            .chat
            .open(user)
            .await
            .map_err(|e| gql_error(&e.into()))?;
        Ok(ChatSession {
            id: ID(session.to_string()),
        })
    }

    /// Sends `text` (1..=500 characters) to the caller's session `sessionId`; the answer
    /// arrives on `chatMessages` and in `chatHistory`.
    async fn send_chat_message(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        text: String,
    ) -> async_graphql::Result<ChatMessageSent> {
        let user = caller(ctx)?;
        let sent = intelligence(ctx)?
            .chat
            .send(user, &session_id, &text)
            .await
            .map_err(|e| gql_error(&e.into()))?;
        Ok(ChatMessageSent {
            session_id: ID(sent.session.to_string()),
            message_id: ID(sent.message_id.to_string()),
        })
    }
}

/// Subscriptions.
pub struct ChatSubscription;

#[Subscription(name = "Subscription")]
impl ChatSubscription {
    /// The caller's session's reply events from now on (or after event `after`): answer
    /// chunks as they are written, then `DONE` or `FAILED` per message.
    async fn chat_messages(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<ChatReplyEvent>> + use<>>
    {
        let user = caller(ctx)?.to_owned();
        if after
            .as_ref()
            .is_some_and(|a| a.is_empty() || a.len() > MAX_CURSOR_LEN)
        {
            return Err(gql_error(&ServiceError::bad_input(
                "after",
                format!("must be 1 to {MAX_CURSOR_LEN} characters"),
            )));
        }
        let ai = intelligence(ctx)?;
        let state = ctx.data::<crate::ReviewState>()?.clone();
        let events = ai
            .chat
            .subscribe(&user, &session_id, after.as_deref())
            .await
            .map_err(|e| gql_error(&e.into()))?;
        Ok(events.then(move |event| {
            let state = state.clone();
            async move {
                let event = event.map_err(|e| gql_error(&e.into()))?;
                reply_event(&state, event).await
            }
        }))
    }
}

async fn reply_event(
    state: &crate::ReviewState,
    event: ChatEvent,
) -> async_graphql::Result<ChatReplyEvent> {
    let mut out = ChatReplyEvent {
        id: event.id,
        message_id: ID(event.message_id.to_string()),
        kind: ChatEventType::Chunk,
        text: None,
        model: None,
        citations: Vec::new(),
        code: None,
    };
    match event.kind {
        ChatEventKind::Chunk { text } => out.text = Some(text),
        ChatEventKind::Restarted => out.kind = ChatEventType::Restarted,
        ChatEventKind::Done { model, citations } => {
            out.kind = ChatEventType::Done;
            out.model = Some(model);
            let ids = ids(&citations);
            let mut found = state
                .service
                .documents()
                .get_many(&ids)
                .await
                .map_err(|e| gql_error(&e.into()))?;
            for id in &ids {
                let doc = match found.remove(id) {
                    Some(doc) => Some(doc),
                    None => state.service.get(id).await.map_err(|e| gql_error(&e))?,
                };
                out.citations.extend(doc.map(ReviewNode));
            }
        }
        ChatEventKind::Failed { code } => {
            out.kind = ChatEventType::Failed;
            out.code = Some(code);
        }
    }
    Ok(out)
}
