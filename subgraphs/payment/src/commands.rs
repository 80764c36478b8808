//! The saga's payment commands from the bus: each `Envelope<PaymentCommand>` on
//! `{prefix}payment.commands` is handled by [`PaymentService::handle`] and answered with an
//! `Envelope<SagaReply>` on `{prefix}saga.replies`, keyed by order id. The offset is committed
//! only after the reply is published; a command whose outcome is not known yet is retried
//! (safe: refunds are idempotent by refund id, at Toss and in the aggregate). Commands of
//! different orders are handled at once, in [`LANES`] lanes by order id.

use std::sync::Arc;

use bus::{BusError, Message, MessageBus, OutgoingRecord};
use contracts::{Envelope, PAYMENT_COMMANDS, PaymentCommand, SAGA_REPLIES};
use uuid::Uuid;

use crate::error::PaymentError;
use crate::service::PaymentService;

/// Refunds of different orders handled at once (one order's commands stay in order, and one
/// that Toss keeps failing holds up its own lane, until 64 more commands wait for that lane
/// and the worker stops receiving; its offset holds back the commit, so a restart redelivers
/// what came after it, which idempotent refunds answer again). Each refund holds a refund
/// turn, so the turns' pool has room for every lane and for staff and webhooks besides.
pub const LANES: usize = 8;

/// Commands are keyed by order id.
fn order_key(msg: &Message) -> &[u8] {
    msg.key.as_deref().unwrap_or_default()
}

/// Consumes payment commands as consumer group `group` until `shutdown` resolves (creating
/// missing topics with `partitions` partitions).
pub async fn run_commands(
    bus: Arc<dyn MessageBus>,
    service: PaymentService,
    group: &str,
    topic_prefix: &str,
    partitions: i32,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), BusError> {
    let commands = format!("{topic_prefix}{PAYMENT_COMMANDS}");
    let replies = format!("{topic_prefix}{SAGA_REPLIES}");
    let dead_letters = bus::dead_letter_topic(&commands);
    bus.ensure_topics(&[&commands, &replies, &dead_letters], partitions)
        .await?;
    tracing::info!(group, topic = %commands, "payment commands consumer started");
    let topics = [commands.as_str()];
    let replies: Arc<str> = Arc::from(replies);
    bus::worker::run_keyed_worker(
        bus.as_ref(),
        &[bus::Subscription::prompt(group, &topics)],
        LANES,
        order_key,
        move |msg| {
            let (service, replies) = (service.clone(), replies.clone());
            async move { on_command(&service, &replies, &msg).await }
        },
        shutdown,
    )
    .await
}

/// Handles one command message; returns the reply to publish on `replies_topic` (for a
/// message that is not a payment command, its copy on the dead-letter topic, `{topic}.dlq`,
/// with the reason in an `error` header).
pub async fn on_command(
    service: &PaymentService,
    replies_topic: &str,
    msg: &Message,
) -> Result<Vec<OutgoingRecord>, PaymentError> {
    let envelope: Envelope<PaymentCommand> = match serde_json::from_slice(&msg.payload) {
        Ok(envelope) => envelope,
        Err(err) => {
            tracing::error!(topic = %msg.topic, partition = msg.partition, offset = msg.offset, error = %err, "undecodable payment command dead-lettered");
            metrics::counter!("commands_dead_lettered_total").increment(1);
            return Ok(vec![msg.dead_letter(&err.to_string())]);
        }
    };
    let order_id = envelope.order_id.clone();
    let message_id = envelope.message_id;
    let traceparent = envelope.traceparent.clone();
    let reply = service.handle(envelope).await?;
    let answer = Envelope {
        // The same command always gets the same reply id, so the saga recognises redeliveries.
        message_id: Uuid::new_v5(&message_id, b"payment-reply"),
        order_id: order_id.clone(),
        traceparent,
        body: reply,
    };
    let payload = serde_json::to_vec(&answer)
        .map_err(|e| PaymentError::Invalid(format!("reply does not serialise: {e}")))?;
    Ok(vec![OutgoingRecord::new(replies_topic, order_id, payload)])
}
