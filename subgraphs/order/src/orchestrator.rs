//! Runs order sagas: turns bus messages into saga inputs, carries out the saga's decisions,
//! and fires payment deadlines and re-sends of unanswered commands from a small index.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::{Message, MessageBus, OutgoingRecord};
use chrono::Utc;
use contracts::events::{OrderPlaced, PaymentConfirmed, PaymentFailed, PaymentRefunded};
use contracts::{Envelope, SagaReply};
use eventstore::{
    Aggregate, EventData, EventStore, ExpectedVersion, Metadata, RecordedEvent, Repository,
    StoreError, StreamAppend,
};
use sqlx::AnyPool;
use tracing::Instrument;
use uuid::Uuid;

use crate::order::{Order, OrderCommand, OrderError, OrderStatus};
use crate::saga::{
    OrderAction, OrderSaga, Outgoing, Phase, SagaCommand, SagaInput, is_saga_refund,
};
use crate::saga_index::{IndexError, SagaIndex};

/// Sagas handled at once by one orchestrator (messages of one order always share a lane); a
/// lane waits for its step's publishes to be acknowledged, so lanes outnumber busy sagas.
const SAGA_LANES: usize = 64;
/// Sagas (and their orders) whose states are kept in memory between steps.
const STATE_CACHE: usize = 20_000;
/// Most inputs remembered as carried out before the bus brings them (again): placements
/// before their `OrderPlaced`, payment confirmations before their relayed `PaymentConfirmed`
/// (past this the oldest are forgotten: a forgotten one is only handled as a redelivery).
const CARRIED_OUT_REMEMBERED: NonZeroUsize = NonZeroUsize::new(50_000).unwrap();
/// Appended to the saga's group name to name the group that consumes its replies (the saga's
/// own group consumes the relayed events, at their own pace).
const REPLIES_GROUP_SUFFIX: &str = "-replies";
/// How long a stopping orchestrator waits for the commands of orders placed just before.
const PLACEMENTS_AT_STOP: Duration = Duration::from_secs(5);
/// Placements whose commands may go out in the background at once; past this `placeOrder`
/// waits for its own.
const PLACEMENTS_IN_FLIGHT: u32 = 1024;

/// How the orchestrator is set up.
#[derive(Debug, Clone)]
pub struct SagaConfig {
    /// How long a reserved order waits for payment.
    pub payment_timeout: chrono::Duration,
    /// How long the saga waits before asking again for a refund Toss refused for now
    /// (`PROVIDER_ERROR`, `FORBIDDEN_CONSECUTIVE_REQUEST`: "try again in a while").
    pub refund_retry_after: chrono::Duration,
    /// Prefix of every topic.
    pub topic_prefix: String,
    /// Partitions of the topics the orchestrator creates when they are missing.
    pub partitions: i32,
    /// Consumer group of the orchestrator on the relayed events; its replies are consumed by
    /// `{group}-replies` (two groups, so each has one member per process).
    pub group: String,
    /// How often deadlines and unanswered commands are checked.
    pub tick: Duration,
    /// Unanswered commands are sent again after this long.
    pub resend_after: chrono::Duration,
    /// How soon the relayed order and payment events are fetched. Replies (and the payment
    /// service's notices) are always fetched at once; the relayed events mostly repeat what a
    /// notice or `place` already did, so by default they come in batches, which the broker
    /// answers far less often (cancellations and declined payments wait for them).
    pub relayed_pace: bus::Pace,
}

impl Default for SagaConfig {
    fn default() -> Self {
        Self {
            payment_timeout: chrono::Duration::minutes(10),
            refund_retry_after: chrono::Duration::minutes(2),
            topic_prefix: String::new(),
            partitions: 6,
            group: "order-saga".into(),
            tick: Duration::from_secs(1),
            resend_after: chrono::Duration::seconds(10),
            relayed_pace: bus::Pace::Batched,
        }
    }
}

/// What [`Orchestrator::step`] did with an input.
#[derive(Debug, Default, Clone, Copy)]
struct Taken {
    /// A saga step was taken (else the input was seen before or changed nothing).
    stepped: bool,
    /// The step gave a refund up to staff (REFUND_FAILED).
    refund_failed: bool,
}

/// Why a saga step failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The saga index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] bus::BusError),
    /// A message could not be decoded.
    #[error("undecodable message on {topic}: {reason}")]
    Decode {
        /// Where it came from.
        topic: String,
        /// Why.
        reason: String,
    },
    /// An order or saga stream is unreadable or stayed contended.
    #[error("{0}")]
    Repository(String),
}

/// Drives every order saga.
pub struct Orchestrator {
    store: Arc<dyn EventStore>,
    bus: Arc<dyn MessageBus>,
    orders: Repository<Order>,
    sagas: Repository<OrderSaga>,
    index: SagaIndex,
    config: SagaConfig,
    /// Ids of inputs whose saga step was taken here before the bus brings them (again):
    /// `OrderPlaced` events whose saga [`Orchestrator::place`] started, and payment
    /// confirmations taken from the payment service's notice.
    carried_out: Mutex<lru::LruCache<Uuid, ()>>,
    /// The topic of replies (and notices) to the saga.
    replies: String,
    /// One per placement whose index write and commands are being carried out in the
    /// background ([`PLACEMENTS_IN_FLIGHT`]); all of them free means none is under way.
    placements: Arc<tokio::sync::Semaphore>,
}

impl Orchestrator {
    /// An orchestrator over `store` and `bus`, keeping its index in `index` (the read-model database).
    pub async fn new(
        store: Arc<dyn EventStore>,
        bus: Arc<dyn MessageBus>,
        index: AnyPool,
        config: SagaConfig,
    ) -> Result<Arc<Self>, OrchestratorError> {
        let orders = Repository::new(store.clone()).with_cache(STATE_CACHE);
        Self::sharing_orders(store, bus, index, config, orders).await
    }

    /// Like [`Orchestrator::new`], writing orders through `orders` (say the
    /// [`crate::service::OrderService`]'s, so both share one cache of order states and a
    /// status read after a saga step needs no stream read).
    pub async fn sharing_orders(
        store: Arc<dyn EventStore>,
        bus: Arc<dyn MessageBus>,
        index: AnyPool,
        config: SagaConfig,
        orders: Repository<Order>,
    ) -> Result<Arc<Self>, OrchestratorError> {
        let index = SagaIndex::open(index).await?;
        let sagas = Repository::new(store.clone()).with_cache(STATE_CACHE);
        let replies = format!("{}{}", config.topic_prefix, contracts::SAGA_REPLIES);
        Ok(Arc::new(Self {
            store,
            bus,
            orders,
            sagas,
            index,
            config,
            carried_out: Mutex::new(lru::LruCache::new(CARRIED_OUT_REMEMBERED)),
            replies,
            placements: Arc::new(tokio::sync::Semaphore::new(PLACEMENTS_IN_FLIGHT as usize)),
        }))
    }

    /// Places an order and starts its saga in one append (the order's `OrderPlaced` and the
    /// saga's first step), then indexes the saga and sends its commands: stock is reserved
    /// without waiting for the placed order to come over the bus. `None` when the order or its
    /// saga already exists, or the order refuses `command`: the caller decides it through the
    /// order repository, and the saga follows the bus as for any order.
    ///
    /// The index and the commands are written in the background: the caller has its order as
    /// soon as it is stored. A failure there is logged, not returned: the order is placed, and
    /// its `OrderPlaced` coming over the bus re-indexes the saga and re-sends its commands.
    pub async fn place(
        self: &Arc<Self>,
        order_id: &str,
        command: OrderCommand,
        metadata: Metadata,
    ) -> Result<Option<Order>, OrchestratorError> {
        let current = self
            .orders
            .current_or_empty(order_id)
            .map_err(repository_error)?;
        let saga_key = saga_id(order_id);
        let saga = self
            .sagas
            .current_or_empty(&saga_key)
            .map_err(repository_error)?;
        if current.version > 0 || saga.version > 0 {
            return Ok(None);
        }
        let mut order = current.state;
        let Ok(order_events) = order.handle(command) else {
            return Ok(None);
        };
        let Some(placed) = order_events.iter().find_map(|e| match e {
            crate::order::OrderEvent::Placed(placed) => Some(placed.clone()),
            _ => None,
        }) else {
            return Ok(None);
        };
        for e in &order_events {
            order.apply(e);
        }
        // The id the bus will carry the event under, so its redelivery is recognised.
        let placed_id = Uuid::new_v5(&order_uuid(order_id), b"placed");
        let order_data = Repository::<Order>::encode(&order_events, &metadata)
            .map_err(repository_error)?
            .into_iter()
            .zip(&order_events)
            .map(|(data, event)| match event {
                crate::order::OrderEvent::Placed(_) => data.with_id(placed_id),
                _ => data,
            })
            .collect();
        let command = SagaCommand {
            message_id: placed_id,
            order_id: order_id.to_owned(),
            input: placed_input(placed),
            payment_timeout: self.config.payment_timeout,
            refund_retry_after: self.config.refund_retry_after,
        };
        let mut state = saga.state;
        let saga_events = state
            .handle(command)
            .map_err(|e| OrchestratorError::Repository(e.to_string()))?;
        for e in &saga_events {
            state.apply(e);
        }
        let saga_data = self.saga_data(order_id, placed_id, &saga_events)?;
        // Built before the append: once the order is stored, nothing is returned but the order.
        let records = self.records(saga_events.iter().flat_map(|e| e.sent.iter()))?;
        let appends = vec![
            StreamAppend::new(
                Repository::<Order>::stream_of(order_id)?,
                ExpectedVersion::Exact(0),
                order_data,
            ),
            StreamAppend::new(
                Repository::<OrderSaga>::stream_of(&saga_key)?,
                ExpectedVersion::Exact(0),
                saga_data,
            ),
        ];
        let done = match self.store.append_multi(appends).await {
            Ok(done) => done,
            // Placed meanwhile (a retried key, say): found by the ordinary path.
            Err(StoreError::WrongExpectedVersion { .. } | StoreError::DuplicateEventId { .. }) => {
                return Ok(None);
            }
            Err(err) => return Err(err.into()),
        };
        let (Some(order_done), Some(saga_done)) = (done.first(), done.get(1)) else {
            return Err(OrchestratorError::Repository(
                "the store answered an append of two streams with fewer results".into(),
            ));
        };
        self.orders
            .appended(order_id, &order, 0, order_done.next_expected_version)
            .await;
        self.sagas
            .remember(&saga_key, &state, saga_done.next_expected_version);
        metrics::counter!("saga_steps_total").increment(1);
        // The index row is handed over now, before any later step of this saga can be.
        let indexed = self.index.submit(&state, saga_done.next_expected_version);
        let Ok(permit) = Arc::clone(&self.placements).try_acquire_owned() else {
            // The bus or the index is slow: callers wait for it rather than pile up work.
            self.carry_out_placement(order_id, placed_id, indexed, records)
                .await;
            return Ok(Some(order));
        };
        let span = tracing::debug_span!(parent: None, "saga.carry_out_placement", order_id);
        span.follows_from(tracing::Span::current());
        let me = Arc::clone(self);
        let order_id = order_id.to_owned();
        tokio::spawn(
            async move {
                me.carry_out_placement(&order_id, placed_id, indexed, records)
                    .await;
                drop(permit);
            }
            .instrument(span),
        );
        Ok(Some(order))
    }

    /// Waits until the index writes and commands of the orders placed so far are carried out
    /// (or have failed, leaving them to the bus): for tests and a clean stop. Meanwhile new
    /// placements carry out their own before answering.
    pub async fn placements_carried_out(&self) {
        // Every permit back means no placement is under way in the background.
        let _all = self.placements.acquire_many(PLACEMENTS_IN_FLIGHT).await;
    }

    /// Indexes a saga [`Orchestrator::place`] started and sends its commands, side by side (the
    /// reserve command does not wait for the index). Either failing leaves the placement to
    /// the `OrderPlaced` that comes over the bus, which indexes the saga and re-sends what is
    /// unanswered; should that come first, it is handled as a redelivery (a second reserve
    /// command, which inventory answers once).
    async fn carry_out_placement(
        &self,
        order_id: &str,
        placed_id: Uuid,
        indexed: impl std::future::Future<Output = Result<(), IndexError>>,
        records: Vec<OutgoingRecord>,
    ) {
        let send = async {
            self.bus
                .publish(records)
                .await
                .map_err(OrchestratorError::from)
        };
        let (indexed, sent) = tokio::join!(indexed, send);
        match indexed.map_err(OrchestratorError::from).and(sent) {
            Ok(()) => self.remember_carried_out(placed_id),
            Err(err) => tracing::warn!(
                order_id,
                error = %err,
                "saga started with the order; its commands go out when the order comes over the bus"
            ),
        }
    }

    fn remember_carried_out(&self, message_id: Uuid) {
        let mut carried_out = match self.carried_out.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        carried_out.put(message_id, ());
    }

    /// Whether the input `message_id` was carried out here before the bus brought it (each is
    /// answered once: a later redelivery is handled as one).
    fn carried_out_here(&self, message_id: Uuid) -> bool {
        let mut carried_out = match self.carried_out.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        carried_out.pop(&message_id).is_some()
    }

    /// The store's events of saga steps caused by `message_id`.
    fn saga_data(
        &self,
        order_id: &str,
        message_id: Uuid,
        events: &[crate::saga::SagaAdvanced],
    ) -> Result<Vec<EventData>, OrchestratorError> {
        Ok(events
            .iter()
            .map(|e| {
                EventData::json("SagaAdvanced", e)
                    .map(|d| d.with_id(derived_id(message_id, order_id)))
                    .map(|d| d.with_metadata(Metadata::caused_by(order_uuid(order_id), message_id)))
            })
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// How this orchestrator is set up (another one in the same group takes the same).
    pub fn config(&self) -> &SagaConfig {
        &self.config
    }

    /// Topics the orchestrator consumes.
    pub fn input_topics(&self) -> Vec<String> {
        let mut topics = self.relayed_topics().to_vec();
        topics.push(self.replies.clone());
        topics
    }

    /// The relayed event topics among [`Orchestrator::input_topics`].
    fn relayed_topics(&self) -> [String; 2] {
        let p = &self.config.topic_prefix;
        [relay::topic_for(p, "order"), relay::topic_for(p, "payment")]
    }

    /// Consumes saga inputs and runs the clock until `shutdown` resolves.
    pub async fn run(
        self: Arc<Self>,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), OrchestratorError> {
        let topics = self.input_topics();
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        let mut all = refs.clone();
        let commands = self.command_topics();
        all.extend(commands.iter().map(String::as_str));
        let dead_letters: Vec<String> = refs.iter().map(|t| bus::dead_letter_topic(t)).collect();
        all.extend(dead_letters.iter().map(String::as_str));
        self.bus.ensure_topics(&all, self.config.partitions).await?;
        // Aborted when `run` returns or is dropped (a killed runner must not leave its clock).
        let _clock = AbortOnDrop(tokio::spawn({
            let me = self.clone();
            async move {
                let mut every = tokio::time::interval(me.config.tick);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    if let Err(err) = me.tick().await {
                        tracing::warn!(error = %err, "saga clock failed; retrying next tick");
                    }
                }
            }
        }));
        let me = self.clone();
        // Sagas of different orders proceed in parallel; one order's messages stay in order.
        let relayed = self.relayed_topics();
        let relayed: Vec<&str> = relayed.iter().map(String::as_str).collect();
        let replies_group = format!("{}{REPLIES_GROUP_SUFFIX}", self.config.group);
        let replies = [self.replies.as_str()];
        let result = bus::worker::run_keyed_worker(
            self.bus.as_ref(),
            &[
                bus::Subscription::prompt(&replies_group, &replies),
                bus::Subscription::new(&self.config.group, &relayed, self.config.relayed_pace),
            ],
            SAGA_LANES,
            order_of,
            move |msg| {
                let me = me.clone();
                async move { me.on_message(&msg).await }
            },
            shutdown,
        )
        .await;
        // Orders placed just before the stop still get their commands (else the bus brings
        // them back after a restart, later).
        let carried_out = self.placements_carried_out();
        if tokio::time::timeout(PLACEMENTS_AT_STOP, carried_out)
            .await
            .is_err()
        {
            tracing::warn!("placements still under way at the stop; the bus brings them back");
        }
        Ok(result?)
    }

    fn command_topics(&self) -> [String; 2] {
        let p = &self.config.topic_prefix;
        [
            format!("{p}{}", contracts::INVENTORY_COMMANDS),
            format!("{p}{}", contracts::PAYMENT_COMMANDS),
        ]
    }

    /// Handles one bus message; returns the commands to publish.
    pub async fn on_message(
        &self,
        msg: &Message,
    ) -> Result<Vec<OutgoingRecord>, OrchestratorError> {
        let from_replies = msg.topic == self.replies;
        match decode(from_replies, msg) {
            Ok(Some((order_id, message_id, input))) => {
                let confirmation = matches!(input, SagaInput::PaymentConfirmed { .. });
                let notice = confirmation && from_replies;
                // What the bus brings after this process carried it out another way: a placed
                // order whose saga `place` started, a relayed confirmation whose notice came first.
                let second_way =
                    matches!(input, SagaInput::OrderPlaced { .. }) || (confirmation && !notice);
                if second_way && self.carried_out_here(message_id) {
                    metrics::counter!("saga_inputs_carried_out_before_total").increment(1);
                    return Ok(vec![]);
                }
                let (records, taken) = self.step(&order_id, message_id, input).await?;
                if notice && taken.stepped {
                    self.remember_carried_out(message_id);
                }
                if taken.refund_failed {
                    // The customer's money is still taken and the saga gave up on its own
                    // (a refusal for now that it tries again is not counted): alert on this.
                    metrics::counter!("saga_refunds_failed_total").increment(1);
                }
                Ok(records)
            }
            Ok(None) => Ok(vec![]),
            // Retrying cannot make it decodable, and a message retried for ever would hold
            // its lane and, with it, the whole consumer: it goes to the topic's dead letters.
            Err(OrchestratorError::Decode { topic, reason }) => {
                tracing::error!(
                    topic,
                    offset = msg.offset,
                    reason,
                    "saga input dead-lettered"
                );
                metrics::counter!("saga_inputs_dead_lettered_total").increment(1);
                Ok(vec![msg.dead_letter(&reason)])
            }
            Err(other) => Err(other),
        }
    }

    /// Feeds one input to a saga and carries out its decision: the saga's step and the order
    /// changes it calls for are appended in one transaction, then the index is updated and the
    /// commands to send are returned.
    pub async fn advance(
        &self,
        order_id: &str,
        message_id: Uuid,
        input: SagaInput,
    ) -> Result<Vec<OutgoingRecord>, OrchestratorError> {
        Ok(self.step(order_id, message_id, input).await?.0)
    }

    /// Has the saga of `order_id` try again the refund Toss refused, and sends it; says whether
    /// the saga took the step (else it holds no money whose refund was refused). `request_id`
    /// names the request: the same id asks once.
    pub async fn retry_refund(
        &self,
        order_id: &str,
        request_id: Uuid,
    ) -> Result<bool, OrchestratorError> {
        let (records, taken) = self
            .step(order_id, request_id, SagaInput::RetryRefund)
            .await?;
        if !records.is_empty()
            && let Err(err) = self.bus.publish(records).await
        {
            // The saga waits on the refund now: a tick re-sends it.
            tracing::warn!(order_id, error = %err, "refund retry recorded; a tick sends it");
        }
        Ok(taken.stepped)
    }

    /// Like [`Orchestrator::advance`]; also says what was done: whether a saga step was taken
    /// (else the input was seen before or changed nothing, and the commands still unanswered
    /// are returned), and whether it gave a refund up to staff.
    async fn step(
        &self,
        order_id: &str,
        message_id: Uuid,
        input: SagaInput,
    ) -> Result<(Vec<OutgoingRecord>, Taken), OrchestratorError> {
        let saga_key = saga_id(order_id);
        let saga_stream = Repository::<OrderSaga>::stream_of(&saga_key)?;
        let order_stream = Repository::<Order>::stream_of(order_id)?;
        let mut command = SagaCommand {
            message_id,
            order_id: order_id.to_owned(),
            input,
            payment_timeout: self.config.payment_timeout,
            refund_retry_after: self.config.refund_retry_after,
        };
        // Cached states may be behind their streams; a stale decision is caught by the
        // append's version checks, and "nothing to do" is confirmed against the stream.
        let (mut saga, mut saga_fresh) = match &command.input {
            // A placed order's saga usually does not exist yet: the append expecting version 0
            // finds out if it does, instead of a read of the (empty) stream first.
            SagaInput::OrderPlaced { .. } => (
                self.sagas
                    .current_or_empty(&saga_key)
                    .map_err(repository_error)?,
                false,
            ),
            _ => self
                .sagas
                .current(&saga_key)
                .await
                .map_err(repository_error)?,
        };
        let mut order: Option<(eventstore::repository::Loaded<Order>, bool)> = None;
        for _ in 0..50 {
            let withdrawn = matches!(command.input, SagaInput::OrderWithdrawn { .. });
            if let SagaInput::RefundedAtToss { units_used, .. }
            | SagaInput::OrderWithdrawn { units_used, .. } = &mut command.input
            {
                // Whether the order was made decides whether its units go back. A cached order
                // may be behind its stream: for a refund at Toss the append's version check on
                // the order catches that (and `order_changes` asks for a fresh read when the
                // order would not change); a withdrawal changes the order no further, so a
                // cached state that does not show it yet is read again.
                let (mut current, mut fresh) = self.order_state(order_id, order.take()).await?;
                let shows_withdrawal = |o: &Order| {
                    o.timeline
                        .iter()
                        .any(|c| matches!(c.status, OrderStatus::Cancelled | OrderStatus::Rejected))
                };
                if withdrawn && !fresh && !shows_withdrawal(&current.state) {
                    current = self
                        .orders
                        .refresh(order_id, current)
                        .await
                        .map_err(repository_error)?;
                    fresh = true;
                }
                *units_used = current.state.goods_made();
                order = Some((current, fresh));
            }
            let events = saga
                .state
                .handle(command.clone())
                .map_err(|e| OrchestratorError::Repository(e.to_string()))?;
            if events.is_empty() {
                if !saga_fresh {
                    saga = self
                        .sagas
                        .refresh(&saga_key, saga)
                        .await
                        .map_err(repository_error)?;
                    saga_fresh = true;
                    continue;
                }
                // Seen before (or irrelevant): make sure what it sent is not lost.
                self.index.update(&saga.state, saga.version).await?;
                return Ok((self.records(saga.state.pending.values())?, Taken::default()));
            }
            let actions: Vec<&OrderAction> =
                events.iter().flat_map(|e| e.order_actions.iter()).collect();
            let mut order_events = Vec::new();
            let mut order_after = None;
            if !actions.is_empty() {
                let (current, fresh) = self.order_state(order_id, order.take()).await?;
                match self.order_changes(order_id, &current, fresh, &actions) {
                    Some((changes, after)) => {
                        order_events = changes;
                        order_after = Some(after);
                        order = Some((current, fresh));
                    }
                    None => {
                        // Refused on a cached state: decide again on the stream's.
                        let current = self
                            .orders
                            .refresh(order_id, current)
                            .await
                            .map_err(repository_error)?;
                        order = Some((current, true));
                        continue;
                    }
                }
            }
            let saga_data = self.saga_data(order_id, message_id, &events)?;
            let mut appends = vec![StreamAppend::new(
                saga_stream.clone(),
                ExpectedVersion::Exact(saga.version),
                saga_data,
            )];
            if let (false, Some((current, _))) = (order_events.is_empty(), &order) {
                let metadata = Metadata::caused_by(order_uuid(order_id), message_id);
                appends.push(StreamAppend::new(
                    order_stream.clone(),
                    ExpectedVersion::Exact(current.version),
                    Repository::<Order>::encode(&order_events, &metadata)
                        .map_err(repository_error)?,
                ));
            }
            match self.store.append_multi(appends).await {
                Ok(done) => {
                    let mut state = saga.state;
                    for e in &events {
                        state.apply(e);
                    }
                    let version = done[0].next_expected_version;
                    self.sagas.remember(&saga_key, &state, version);
                    if let (Some(after), Some(order_done)) = (order_after, done.get(1)) {
                        self.orders
                            .remember(order_id, &after, order_done.next_expected_version);
                    }
                    self.index.update(&state, version).await?;
                    metrics::counter!("saga_steps_total").increment(1);
                    let sent: Vec<&Outgoing> = events.iter().flat_map(|e| e.sent.iter()).collect();
                    let taken = Taken {
                        stepped: true,
                        refund_failed: actions
                            .iter()
                            .any(|a| matches!(a, OrderAction::MarkRefundFailed { .. })),
                    };
                    return Ok((self.records(sent.into_iter())?, taken));
                }
                // Someone wrote the saga or the order meanwhile, or this very step was written
                // before (its event id is derived from the message): read what is new, decide
                // again.
                Err(
                    StoreError::WrongExpectedVersion { .. } | StoreError::DuplicateEventId { .. },
                ) => {
                    saga = self
                        .sagas
                        .refresh(&saga_key, saga)
                        .await
                        .map_err(repository_error)?;
                    saga_fresh = true;
                    if let Some((current, _)) = order.take() {
                        let current = self
                            .orders
                            .refresh(order_id, current)
                            .await
                            .map_err(repository_error)?;
                        order = Some((current, true));
                    }
                }
                Err(err) => return Err(err.into()),
            }
        }
        Err(OrchestratorError::Repository(format!(
            "saga of {order_id} stayed contended"
        )))
    }

    /// The order as `step` knows it (`known`), else as the cache or its stream has it (with
    /// whether it was read from the stream).
    async fn order_state(
        &self,
        order_id: &str,
        known: Option<(eventstore::repository::Loaded<Order>, bool)>,
    ) -> Result<(eventstore::repository::Loaded<Order>, bool), OrchestratorError> {
        match known {
            Some(known) => Ok(known),
            None => self
                .orders
                .current(order_id)
                .await
                .map_err(repository_error),
        }
    }

    /// The order events the saga's actions produce on `current`, and the order after them.
    /// Actions the order refuses are skipped (it moved on, e.g. the customer cancelled: the
    /// saga hears of that through the order's own events); `None` when a refusal, or an action
    /// that changes nothing, was decided on a state that may be stale (`fresh` false) and must
    /// be decided again (with no order events there is no version check to catch it).
    fn order_changes(
        &self,
        order_id: &str,
        current: &eventstore::repository::Loaded<Order>,
        fresh: bool,
        actions: &[&OrderAction],
    ) -> Option<(Vec<crate::order::OrderEvent>, Order)> {
        let mut state = current.state.clone();
        let mut all = Vec::new();
        for action in actions {
            let command = match (*action).clone() {
                OrderAction::AwaitPayment { expires_at } => {
                    OrderCommand::AwaitPayment { expires_at }
                }
                OrderAction::MarkPaid { payment_key } => OrderCommand::MarkPaid { payment_key },
                OrderAction::Reject { reason } => OrderCommand::Reject { reason },
                OrderAction::FailPayment { reason } => OrderCommand::FailPayment { reason },
                OrderAction::Expire => OrderCommand::Expire,
                OrderAction::MarkRefunded { amount } => OrderCommand::MarkRefunded { amount },
                OrderAction::MarkRefundedAtToss { reason } => {
                    OrderCommand::MarkRefundedAtToss { reason }
                }
                OrderAction::MarkRefundFailed { reason } => {
                    OrderCommand::MarkRefundFailed { reason }
                }
                OrderAction::RetryRefund => OrderCommand::RetryRefund,
            };
            match state.handle(command) {
                Ok(events) if events.is_empty() && !fresh => return None,
                Ok(events) => {
                    for e in &events {
                        state.apply(e);
                    }
                    all.extend(events);
                }
                Err(_) if !fresh => return None,
                Err(err @ OrderError::WrongStatus { .. }) => {
                    tracing::info!(order_id, error = %err, "order moved on; saga action skipped");
                }
                Err(err) => {
                    tracing::warn!(order_id, error = %err, "saga action refused by the order");
                }
            }
        }
        Some((all, state))
    }

    fn records<'a>(
        &self,
        outgoing: impl Iterator<Item = &'a Outgoing>,
    ) -> Result<Vec<OutgoingRecord>, OrchestratorError> {
        let [inventory, payment] = self.command_topics();
        outgoing
            .map(|out| {
                let (topic, order_id, payload) = match out {
                    Outgoing::Inventory(e) => (&inventory, &e.order_id, serde_json::to_vec(e)),
                    Outgoing::Payment(e) => (&payment, &e.order_id, serde_json::to_vec(e)),
                };
                let payload = payload.map_err(|e| OrchestratorError::Decode {
                    topic: topic.clone(),
                    reason: e.to_string(),
                })?;
                Ok(OutgoingRecord::new(
                    topic.clone(),
                    order_id.clone(),
                    payload,
                ))
            })
            .collect()
    }

    /// Fires due deadlines (payments, refund retries) and re-sends commands unanswered for too
    /// long.
    pub async fn tick(&self) -> Result<(), OrchestratorError> {
        let now = Utc::now();
        let due = self.index.due(now).await?;
        let mut records = Vec::new();
        // One order that fails here must not hold back the others: it is logged and tried
        // again next tick, while the rest go on.
        for order_id in due {
            // One id per tick: a saga may have several deadlines in its life (a payment's, a
            // refund's retries), and a tick that finds nothing due takes no step.
            let id = Uuid::new_v5(
                &order_uuid(&order_id),
                format!("tick:{}", now.timestamp_micros()).as_bytes(),
            );
            match self.advance(&order_id, id, SagaInput::Tick { now }).await {
                Ok(due_records) => records.extend(due_records),
                Err(err) => {
                    tracing::warn!(order_id, error = %err, "deadline not applied; retrying later");
                    self.postpone(&order_id, now).await;
                }
            }
        }
        let stale = self
            .index
            .unanswered(now - self.config.resend_after)
            .await?;
        for order_id in stale {
            match self.unanswered_commands(&order_id).await {
                Ok(resent) => records.extend(resent),
                Err(err) => {
                    tracing::warn!(order_id, error = %err, "cannot re-send saga commands; retrying later");
                    self.postpone(&order_id, now).await;
                }
            }
        }
        if !records.is_empty() {
            self.bus.publish(records).await?;
        }
        Ok(())
    }

    /// Has the clock try `order_id` again after `resend_after`, not on the next tick: the
    /// clock takes the earliest first, so sagas that fail every time would otherwise come
    /// first on every tick and, 500 of them, hold back all others.
    async fn postpone(&self, order_id: &str, now: chrono::DateTime<Utc>) {
        let later = now + self.config.resend_after;
        if let Err(err) = self.index.postpone(order_id, later, now).await {
            tracing::warn!(order_id, error = %err, "cannot postpone the saga in the index");
        }
    }

    /// The commands `order_id`'s saga still waits on, marked as sent again.
    async fn unanswered_commands(
        &self,
        order_id: &str,
    ) -> Result<Vec<OutgoingRecord>, OrchestratorError> {
        let loaded = self
            .sagas
            .load(&saga_id(order_id))
            .await
            .map_err(|e| OrchestratorError::Repository(e.to_string()))?;
        tracing::info!(
            order_id,
            pending = loaded.state.pending.len(),
            "re-sending unanswered saga commands"
        );
        let records = self.records(loaded.state.pending.values())?;
        self.index.update(&loaded.state, loaded.version).await?;
        Ok(records)
    }

    /// The saga's phase, for tests and operators.
    pub async fn phase(&self, order_id: &str) -> Result<Phase, OrchestratorError> {
        Ok(self.saga(order_id).await?.phase)
    }

    /// The saga's state as its stream has it, for tests and operators.
    pub async fn saga(&self, order_id: &str) -> Result<OrderSaga, OrchestratorError> {
        let loaded = self
            .sagas
            .load(&saga_id(order_id))
            .await
            .map_err(|e| OrchestratorError::Repository(e.to_string()))?;
        Ok(loaded.state)
    }
}

/// A repository failure of the saga or the order (the step is retried).
fn repository_error<E: std::error::Error>(
    err: eventstore::RepositoryError<E>,
) -> OrchestratorError {
    OrchestratorError::Repository(err.to_string())
}

/// The saga aggregate's id for an order (stream `saga-order:{order_id}`).
fn saga_id(order_id: &str) -> String {
    format!("order:{order_id}")
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The order a saga input belongs to, from its record key: `order-{id}` and `payment-{id}`
/// stream ids on event topics, the bare order id on the replies topic.
fn order_of(msg: &Message) -> &[u8] {
    let key = msg.key.as_deref().unwrap_or_default();
    key.strip_prefix(b"order-")
        .or_else(|| key.strip_prefix(b"payment-"))
        .unwrap_or(key)
}

/// A stable UUID for an order id (order ids are UUIDs; anything else is hashed).
fn order_uuid(order_id: &str) -> Uuid {
    Uuid::parse_str(order_id)
        .unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_OID, order_id.as_bytes()))
}

/// The saga's message id of a payment confirmation, whichever way it came (the payment
/// service's direct notice or the relayed `PaymentConfirmed` event), so the saga takes it once.
fn confirmation_id(order_id: &str, payment_key: &str) -> Uuid {
    Uuid::new_v5(
        &order_uuid(order_id),
        format!("paid:{payment_key}").as_bytes(),
    )
}

/// The saga event id for an input: the same input always yields the same id, so an append
/// repeated after a crash is recognised as a replay.
fn derived_id(message_id: Uuid, order_id: &str) -> Uuid {
    Uuid::new_v5(&message_id, order_id.as_bytes())
}

/// The saga input of a placed order.
fn placed_input(placed: OrderPlaced) -> SagaInput {
    SagaInput::OrderPlaced {
        lines: placed.lines.into_iter().map(|l| l.line).collect(),
        total: placed.total,
    }
}

/// Reads a saga input from a bus message (`from_replies`: on the saga's replies topic), or
/// `None` when the message is not one.
fn decode(
    from_replies: bool,
    msg: &Message,
) -> Result<Option<(String, Uuid, SagaInput)>, OrchestratorError> {
    let bad = |reason: String| OrchestratorError::Decode {
        topic: msg.topic.clone(),
        reason,
    };
    if from_replies {
        let env: Envelope<SagaReply> =
            serde_json::from_slice(&msg.payload).map_err(|e| bad(e.to_string()))?;
        let (message_id, input) = match env.body {
            SagaReply::PaymentConfirmed {
                payment_key,
                amount,
            } => (
                confirmation_id(&env.order_id, &payment_key),
                SagaInput::PaymentConfirmed {
                    payment_key,
                    amount,
                },
            ),
            reply => (env.message_id, SagaInput::Replied(reply)),
        };
        return Ok(Some((env.order_id, message_id, input)));
    }
    let event: RecordedEvent =
        serde_json::from_slice(&msg.payload).map_err(|e| bad(e.to_string()))?;
    let input = match event.event_type.as_str() {
        contracts::events::ORDER_PLACED => {
            let placed: OrderPlaced = event.decode().map_err(|e| bad(e.to_string()))?;
            Some((placed.order_id.clone(), placed_input(placed)))
        }
        "OrderCancelled" | "OrderRejected" => {
            let changed: crate::order::StatusChanged =
                event.decode().map_err(|e| bad(e.to_string()))?;
            Some((
                changed.order_id,
                SagaInput::OrderWithdrawn {
                    reason: changed.reason.unwrap_or_else(|| "withdrawn".into()),
                    // Filled in from the order when the saga steps.
                    units_used: false,
                },
            ))
        }
        contracts::events::PAYMENT_CONFIRMED => {
            let paid: PaymentConfirmed = event.decode().map_err(|e| bad(e.to_string()))?;
            // The payment service's direct notice of it carries the same id.
            let id = confirmation_id(&paid.order_id, &paid.payment_key);
            return Ok(Some((
                paid.order_id,
                id,
                SagaInput::PaymentConfirmed {
                    payment_key: paid.payment_key,
                    amount: paid.amount,
                },
            )));
        }
        contracts::events::PAYMENT_REFUNDED => {
            let refunded: PaymentRefunded = event.decode().map_err(|e| bad(e.to_string()))?;
            // The saga's own refund is answered by the payment service's reply.
            if is_saga_refund(&refunded.order_id, &refunded.refund_id) {
                None
            } else {
                Some((
                    refunded.order_id,
                    SagaInput::RefundedAtToss {
                        amount: refunded.amount,
                        balance: refunded.balance,
                        reason: refunded.reason,
                        // Filled in from the order when the saga steps.
                        units_used: false,
                    },
                ))
            }
        }
        contracts::events::PAYMENT_FAILED => {
            let failed: PaymentFailed = event.decode().map_err(|e| bad(e.to_string()))?;
            Some((
                failed.order_id,
                SagaInput::PaymentFailed {
                    reason: format!("{} ({})", failed.reason, failed.code),
                },
            ))
        }
        _ => None,
    };
    Ok(input.map(|(order_id, input)| (order_id, event.id, input)))
}
