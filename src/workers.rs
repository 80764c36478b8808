//! Command workers: consume a saga command topic, hand each command to its subgraph's
//! handler, and publish the reply to the saga; malformed commands go to a dead-letter topic.

use std::future::Future;
use std::sync::Arc;

use bus::{Message, MessageBus, OutgoingRecord};
use contracts::{Envelope, SagaReply};
use serde::de::DeserializeOwned;

/// Why a command could not be handled.
#[derive(Debug)]
pub enum Failure {
    /// It can never succeed (malformed): dead-letter it.
    Permanent(String),
    /// It may succeed later (a store is down): retry it.
    Transient(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Permanent(m) => write!(f, "permanent: {m}"),
            Self::Transient(m) => write!(f, "transient: {m}"),
        }
    }
}

/// Commands of different orders handled at once (one order's commands stay in order); a lane
/// waits for its reply's publish to be acknowledged, so lanes outnumber busy orders.
const LANES: usize = 64;

/// Runs a worker for commands of type `C` on `topic` until `shutdown` resolves (creating
/// missing topics with `partitions` partitions).
pub async fn run_command_worker<C, H, Fut>(
    bus: Arc<dyn MessageBus>,
    group: &str,
    topic: &str,
    replies: &str,
    partitions: i32,
    handler: H,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), bus::BusError>
where
    C: DeserializeOwned + Send + 'static,
    H: Fn(Envelope<C>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<SagaReply, Failure>> + Send + 'static,
{
    let dead_letters = bus::dead_letter_topic(topic);
    bus.ensure_topics(&[topic, replies, &dead_letters], partitions)
        .await?;
    let replies: Arc<str> = Arc::from(replies);
    bus::worker::run_keyed_worker(
        bus.as_ref(),
        &[bus::Subscription::prompt(group, &[topic])],
        LANES,
        record_key,
        move |msg: Message| {
            let (handler, replies) = (handler.clone(), replies.clone());
            async move {
                let envelope: Envelope<C> = match serde_json::from_slice(&msg.payload) {
                    Ok(env) => env,
                    Err(err) => return Ok(dead_letter(&msg, &err.to_string())),
                };
                let order_id = envelope.order_id.clone();
                let traceparent = envelope.traceparent.clone();
                match handler(envelope).await {
                    Ok(reply) => {
                        let mut answer = Envelope::new(order_id.clone(), reply);
                        answer.traceparent = traceparent;
                        let payload = serde_json::to_vec(&answer)
                            .map_err(|e| Failure::Transient(e.to_string()))?;
                        Ok(vec![OutgoingRecord::new(
                            replies.as_ref(),
                            order_id,
                            payload,
                        )])
                    }
                    Err(Failure::Permanent(reason)) => Ok(dead_letter(&msg, &reason)),
                    Err(err) => Err(err),
                }
            }
        },
        shutdown,
    )
    .await
}

/// Commands are keyed by order id.
fn record_key(msg: &Message) -> &[u8] {
    msg.key.as_deref().unwrap_or_default()
}

fn dead_letter(msg: &Message, reason: &str) -> Vec<OutgoingRecord> {
    tracing::error!(topic = %msg.topic, offset = msg.offset, reason, "command dead-lettered");
    metrics::counter!("commands_dead_lettered_total").increment(1);
    vec![msg.dead_letter(reason)]
}
