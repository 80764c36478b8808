//! GraphQL over WebSocket, the `graphql-transport-ws` protocol: `connection_init` (with the
//! bearer token in its payload) → `connection_ack`, then any number of `subscribe`s, each
//! answered by `next`s and a `complete` (or one `error`); `ping`/`pong` either way.
//!
//! A signed-in connection lives as long as its token: it is closed with 4403 (`Forbidden`, on
//! which graphql-ws clients reconnect with fresh `connectionParams`) when the token verified
//! at `connection_init` passes `exp` plus the verifier's leeway, and each `subscribe`
//! verifies the token again first. Anonymous connections have no such deadline.
//!
//! The server pings every connection each `ws_keepalive` interval (WebSocket ping frames,
//! which every client answers by itself) and closes one that answered nothing for two
//! intervals, or that takes longer than one interval to accept a message: a client that
//! vanished without closing does not hold its connection slot for ever.
//!
//! One task per connection and none per operation: every operation is a stream polled by
//! the connection's loop, so closing the socket (or a `complete`) drops it at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse as _, Response};
use futures::stream::{AbortHandle, Abortable, BoxStream, SelectAll, StreamExt as _};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::authentication::Caller;
use crate::operation::{Rejection, Shared};
use crate::request::GraphqlRequest;

/// The subprotocol spoken.
pub const PROTOCOL: &str = "graphql-transport-ws";

/// Close codes of the protocol.
mod close {
    pub const INVALID_MESSAGE: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const SUBPROTOCOL: u16 = 4406;
    pub const INIT_TIMEOUT: u16 = 4408;
    pub const DUPLICATE_ID: u16 = 4409;
    pub const TOO_MANY: u16 = 4429;
    pub const GOING_AWAY: u16 = 1001;
}

/// How many keepalive intervals a client may stay silent before it is disconnected.
const SILENT_INTERVALS: u32 = 2;

/// Counts open connections per user (or per IP for anonymous callers).
#[derive(Debug)]
pub struct ConnectionSlots {
    max: usize,
    open: Mutex<HashMap<String, usize>>,
}

/// One held connection slot; released on drop.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<ConnectionSlots>,
    key: String,
}

impl ConnectionSlots {
    /// At most `max` connections per key.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `key`, or `None` when it already holds `max`.
    pub fn acquire(self: &Arc<Self>, key: String) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key.clone()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            slots: self.clone(),
            key,
        })
    }

    /// Connections open for `key`.
    pub fn open(&self, key: &str) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(key).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .slots
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Client → server messages.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Map<String, Value>>,
    },
    Ping {
        #[serde(default)]
        payload: Option<Value>,
    },
    Pong {},
    Subscribe {
        id: String,
        payload: GraphqlRequest,
    },
    Complete {
        id: String,
    },
}

/// Server → client messages.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerMessage<'a> {
    ConnectionAck,
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        payload: Option<Value>,
    },
    Next {
        id: &'a str,
        payload: &'a federation::Response,
    },
    Error {
        id: &'a str,
        payload: &'a [federation::GraphQLError],
    },
    Complete {
        id: &'a str,
    },
}

/// Accepts the upgrade; a connection that offers no `graphql-transport-ws` is closed.
pub fn upgrade(
    shared: Arc<Shared>,
    upgrade: WebSocketUpgrade,
    ip: IpAddr,
    headers: &HeaderMap,
) -> Response {
    if let Err(refusal) = shared.rate.check(crate::rate::RateKey::Ip(ip)) {
        return crate::http::reject(crate::request::ResponseFormat::Json, refusal.into());
    }
    // Non-browser clients may authenticate the upgrade itself; the init payload wins.
    let header_auth = crate::authentication::authorization(headers).map(str::to_owned);
    let limit = shared.body_limit;
    let upgrade = upgrade.protocols([PROTOCOL]).max_message_size(limit);
    let speaks_protocol = upgrade.selected_protocol().is_some();
    upgrade
        .on_upgrade(move |mut socket| async move {
            if !speaks_protocol {
                let frame = CloseFrame {
                    code: close::SUBPROTOCOL,
                    reason: "Subprotocol not acceptable: use graphql-transport-ws".into(),
                };
                // Best effort, and never longer than a keepalive interval.
                let send = socket.send(Message::Close(Some(frame)));
                let _ = tokio::time::timeout(shared.ws_keepalive, send).await;
                return;
            }
            Connection {
                shared,
                socket,
                ip,
                header_auth,
            }
            .run()
            .await;
        })
        .into_response()
}

struct Connection {
    shared: Arc<Shared>,
    socket: WebSocket,
    ip: IpAddr,
    header_auth: Option<String>,
}

/// An operation's output on the connection: a response, or its end.
type Item = (Arc<str>, Option<federation::Response>);

/// The state after `connection_init`.
struct Session {
    caller: Caller,
    /// The `Authorization` value the caller was verified with (signed-in callers only).
    authorization: Option<String>,
    _slot: crate::ws::Slot,
}

/// Why a `subscribe` was not started after verifying the token again.
enum Recheck {
    /// The token no longer verifies: close the connection with this reason.
    Close(String),
    /// Verification could not be done now: refuse this operation only.
    Refuse(Rejection),
}

impl Connection {
    async fn run(mut self) {
        let shutdown = self.shared.shutdown.clone();
        let deadline = tokio::time::sleep(self.shared.ws_init_timeout);
        tokio::pin!(deadline);
        // Armed at `connection_init` for a signed-in caller: when the token stops verifying.
        let expiry = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(expiry);
        let mut expires = false;
        let keepalive = self.shared.ws_keepalive;
        let mut pings =
            tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = tokio::time::Instant::now();
        let mut session: Option<Session> = None;
        let mut operations: SelectAll<BoxStream<'static, Item>> = SelectAll::new();
        let mut active: HashMap<Arc<str>, AbortHandle> = HashMap::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    self.close(close::GOING_AWAY, "server shutting down").await;
                    break;
                }
                () = &mut deadline, if session.is_none() => {
                    self.close(close::INIT_TIMEOUT, "Connection initialisation timeout").await;
                    break;
                }
                () = &mut expiry, if expires => {
                    tracing::debug!(client.address = %self.ip, "websocket closed: the access token expired");
                    self.close(close::FORBIDDEN, "Forbidden: the token has expired").await;
                    break;
                }
                _ = pings.tick() => {
                    if last_heard.elapsed() >= keepalive * SILENT_INTERVALS {
                        tracing::debug!(client.address = %self.ip, "websocket closed: the client stopped answering");
                        self.close(close::GOING_AWAY, "no answer to pings").await;
                        break;
                    }
                    if !self.send_frame(Message::Ping(Default::default())).await {
                        break;
                    }
                }
                Some((id, item)) = operations.next(), if !operations.is_empty() => {
                    let sent = match item {
                        Some(response) => self.send(&ServerMessage::Next { id: &id, payload: &response }).await,
                        None => {
                            active.remove(&id);
                            self.send(&ServerMessage::Complete { id: &id }).await
                        }
                    };
                    if !sent {
                        break;
                    }
                }
                message = self.socket.recv() => {
                    last_heard = tokio::time::Instant::now();
                    let text = match message {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Binary(_))) => {
                            self.close(close::INVALID_MESSAGE, "binary messages are not supported").await;
                            break;
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    };
                    let message = match serde_json::from_str::<ClientMessage>(&text) {
                        Ok(message) => message,
                        Err(err) => {
                            let reason = format!("Invalid message received: {err}");
                            self.close(close::INVALID_MESSAGE, &reason).await;
                            break;
                        }
                    };
                    let keep = match message {
                        ClientMessage::ConnectionInit { payload } => {
                            if session.is_some() {
                                self.close(close::TOO_MANY, "Too many initialisation requests").await;
                                false
                            } else {
                                let shared = self.shared.clone();
                                match init(&shared, self.ip, self.header_auth.as_deref(), payload).await {
                                    Ok(started) => {
                                        if let Some(at) = token_deadline(&shared, &started.caller) {
                                            expiry.as_mut().reset(at);
                                            expires = true;
                                        }
                                        session = Some(started);
                                        self.send(&ServerMessage::ConnectionAck).await
                                    }
                                    Err((code, reason)) => {
                                        self.close(code, &reason).await;
                                        false
                                    }
                                }
                            }
                        }
                        ClientMessage::Ping { payload } => self.send(&ServerMessage::Pong { payload }).await,
                        ClientMessage::Pong {} => true,
                        ClientMessage::Complete { id } => {
                            if let Some(handle) = active.remove(id.as_str()) {
                                handle.abort();
                            }
                            true
                        }
                        ClientMessage::Subscribe { id, payload } => match &session {
                            None => {
                                self.close(close::UNAUTHORIZED, "Unauthorized").await;
                                false
                            }
                            Some(_) if active.contains_key(id.as_str()) => {
                                let reason = format!("Subscriber for {id} already exists");
                                self.close(close::DUPLICATE_ID, &reason).await;
                                false
                            }
                            Some(session) => {
                                let id: Arc<str> = id.into();
                                match recheck(&self.shared, session).await {
                                    Err(Recheck::Close(reason)) => {
                                        self.close(close::FORBIDDEN, &reason).await;
                                        break;
                                    }
                                    Err(Recheck::Refuse(rejection)) => {
                                        if self.send(&ServerMessage::Error { id: &id, payload: &rejection.response.errors }).await {
                                            continue;
                                        }
                                        break;
                                    }
                                    Ok(()) => {}
                                }
                                match self.start(session, payload) {
                                    Ok(stream) => {
                                        let (handle, registration) = AbortHandle::new_pair();
                                        active.insert(id.clone(), handle);
                                        let tagged = stream
                                            .map(Some)
                                            .chain(futures::stream::once(async { None }))
                                            .map(move |item| (id.clone(), item));
                                        operations.push(Abortable::new(tagged, registration).boxed());
                                        true
                                    }
                                    Err(rejection) => {
                                        self.send(&ServerMessage::Error { id: &id, payload: &rejection.response.errors }).await
                                    }
                                }
                            }
                        },
                    };
                    if !keep {
                        break;
                    }
                }
            }
        }
        for (_, handle) in active.drain() {
            handle.abort();
        }
    }
}

/// Verifies a signed-in session's token again (expiry, keys, issuer) before an operation.
async fn recheck(shared: &Shared, session: &Session) -> Result<(), Recheck> {
    let (Some(identity), Some(authorization)) = (&session.caller.identity, &session.authorization)
    else {
        return Ok(());
    };
    match shared.auth.authenticate(Some(authorization)).await {
        Ok(again) if again.identity.as_ref().map(|i| &i.sub) == Some(&identity.sub) => Ok(()),
        Ok(_) => Err(Recheck::Close("Forbidden: the identity changed".to_owned())),
        Err(refusal) if refusal.status.is_server_error() => Err(Recheck::Refuse(refusal.into())),
        Err(refusal) => Err(Recheck::Close(format!("Forbidden: {}", refusal.message))),
    }
}

impl Connection {
    /// Prepares one `subscribe` and turns it into a response stream.
    fn start(
        &self,
        session: &Session,
        request: GraphqlRequest,
    ) -> Result<BoxStream<'static, federation::Response>, Rejection> {
        let started = Instant::now();
        if let Some(identity) = &session.caller.identity {
            self.shared
                .rate
                .check(crate::rate::RateKey::User(&identity.sub))?;
        } else {
            self.shared.rate.check(crate::rate::RateKey::Ip(self.ip))?;
        }
        let ready = self.shared.prepare(request, started)?;
        Ok(self.shared.stream(ready, &session.caller)?)
    }

    /// Sends one message; false when the socket is gone.
    async fn send(&mut self, message: &ServerMessage<'_>) -> bool {
        match serde_json::to_string(message) {
            Ok(text) => self.send_frame(Message::Text(text.into())).await,
            Err(err) => {
                tracing::error!(error = %err, "cannot serialise a websocket message");
                false
            }
        }
    }

    /// Sends one frame within the keepalive interval; false when the socket is gone or the
    /// client has not taken it in time.
    async fn send_frame(&mut self, frame: Message) -> bool {
        match tokio::time::timeout(self.shared.ws_keepalive, self.socket.send(frame)).await {
            Ok(sent) => sent.is_ok(),
            Err(_) => {
                tracing::debug!(client.address = %self.ip, "websocket closed: the client stopped reading");
                false
            }
        }
    }

    /// Sends a close frame (best effort: a client that does not take it is dropped).
    async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = self.send_frame(Message::Close(Some(frame))).await;
    }
}

/// Authenticates the connection and takes a connection slot.
async fn init(
    shared: &Shared,
    ip: IpAddr,
    header_auth: Option<&str>,
    payload: Option<Map<String, Value>>,
) -> Result<Session, (u16, String)> {
    let from_payload = payload.as_ref().and_then(|p| {
        p.get("Authorization")
            .or_else(|| p.get("authorization"))
            .and_then(Value::as_str)
    });
    let authorization = from_payload.or(header_auth);
    let caller = shared
        .admit(authorization, ip)
        .await
        .map_err(|refusal| match refusal.code {
            "RATE_LIMITED" => (close::TOO_MANY, "Too many requests".to_owned()),
            _ => (close::UNAUTHORIZED, "Unauthorized".to_owned()),
        })?;
    let key = match &caller.identity {
        Some(identity) => format!("user:{}", identity.sub),
        None => format!("ip:{}", ip),
    };
    let slot = shared.ws_slots.acquire(key).ok_or_else(|| {
        (
            close::TOO_MANY,
            "Too many open connections for this user".to_owned(),
        )
    })?;
    let authorization = caller
        .identity
        .as_ref()
        .and(authorization)
        .map(str::to_owned);
    Ok(Session {
        caller,
        authorization,
        _slot: slot,
    })
}

/// When `caller`'s token stops verifying: past its `exp` plus the verifier's leeway, in the
/// verifier's whole seconds (a token is accepted through second `exp + leeway`, so the
/// connection closes one second after it). `None` for anonymous callers (or an `exp` too far
/// away to schedule).
fn token_deadline(shared: &Shared, caller: &Caller) -> Option<tokio::time::Instant> {
    let exp = u64::try_from(caller.expires_at?).ok()?;
    let until = Duration::from_secs(exp.checked_add(1)?).checked_add(shared.auth.leeway())?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    tokio::time::Instant::now().checked_add(until.saturating_sub(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What handlers share, verifying tokens of `issuer` with no leeway.
    fn shared(issuer: &auth::DevIssuer) -> Shared {
        let mut cognito = issuer.config();
        cognito.leeway = Duration::ZERO;
        Shared {
            engine: std::sync::OnceLock::new(),
            auth: crate::authentication::Authenticator::new(Some(cognito)).unwrap(),
            apq: crate::apq::PersistedQueries::new(1),
            rate: crate::rate::RateLimit::new(crate::RateLimits::default()),
            trusted_proxies: crate::TrustedProxies::default(),
            ws_slots: ConnectionSlots::new(10),
            names: crate::metrics::OperationNames::default(),
            body_limit: 1024,
            ws_init_timeout: Duration::from_secs(1),
            ws_keepalive: Duration::from_secs(15),
            shutdown: tokio_util::sync::CancellationToken::new(),
        }
    }

    fn payload(token: &str) -> Option<Map<String, Value>> {
        let mut map = Map::new();
        map.insert("Authorization".into(), format!("Bearer {token}").into());
        Some(map)
    }

    #[tokio::test]
    async fn each_subscribe_verifies_the_token_again() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = auth::DevIssuer::start(listener, "test-client")
            .await
            .unwrap();
        let shared = shared(&issuer);
        let ip = IpAddr::from([127, 0, 0, 1]);
        let mut request = auth::MintRequest::access("brief", &[auth::Group::Customers]);
        request.ttl_secs = 1;
        let token = issuer.mint(&request).unwrap();

        let signed_in = init(&shared, ip, None, payload(&token)).await.unwrap();
        assert!(signed_in.authorization.is_some());
        let deadline = token_deadline(&shared, &signed_in.caller).unwrap();
        assert!(deadline > tokio::time::Instant::now());
        assert!(recheck(&shared, &signed_in).await.is_ok(), "valid now");
        let anonymous = init(&shared, ip, None, None).await.unwrap();
        assert!(token_deadline(&shared, &anonymous.caller).is_none());

        // Past the deadline the token no longer verifies, and a subscribe closes the socket.
        tokio::time::sleep_until(deadline + Duration::from_millis(50)).await;
        match recheck(&shared, &signed_in).await {
            Err(Recheck::Close(reason)) => assert!(reason.contains("expired"), "{reason}"),
            Err(Recheck::Refuse(_)) => panic!("refused as unavailable, not closed"),
            Ok(()) => panic!("an expired token passed the re-check"),
        }
        assert!(
            recheck(&shared, &anonymous).await.is_ok(),
            "anonymous: no token"
        );
    }
}
