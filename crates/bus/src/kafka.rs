//! The production adapter: Kafka through rdkafka.
//!
//! Publishing uses one idempotent `acks=all` producer per bus; a batch is enqueued whole, then
//! every delivery report is awaited. Each subscription is its own consumer (one group member)
//! with auto-commit off; offsets are committed synchronously, on a blocking thread, only when
//! the caller commits. Topics are created with the admin client. Transactions and
//! `read_committed` are never used (tansu, the test broker, sends no aborted-transaction list).

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};

use crate::{BusError, Consumer, Message, MessageBus, OutgoingRecord, Pace};

/// How long librdkafka keeps trying to deliver a record before the publish fails.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long topic creation may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait before enqueuing again when the producer's local queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(5);

/// The longest a broker may hold a prompt subscriber's fetch by default. Saga steps hop
/// through Kafka several times, so prompt fetches are answered quickly rather than after
/// librdkafka's default 500 ms. A broker that holds a fetch without news for its full wait
/// (tansu) pays for each fetch: 10 ms once cost it 0.35 idle cores and 20% of the ordering
/// benchmark's throughput against 50 ms. Since the producer lingers 10 ms (fewer, larger
/// batches for tansu to list on each fetch), 15 ms is the better trade there (README). A real
/// Kafka broker answers as soon as a record arrives, so there the wait only bounds idle polling.
pub const DEFAULT_PROMPT_FETCH_WAIT: Duration = Duration::from_millis(15);

/// How a fetch of a subscriber at `pace` waits: the longest the broker may hold it (ms) and
/// the data it waits for (bytes). Prompt subscribers wait `prompt_wait` for any record;
/// batched ones (read models) up to 250 ms for 64 KiB.
fn fetch_settings(pace: Pace, prompt_wait: Duration) -> (String, &'static str) {
    match pace {
        Pace::Prompt => (prompt_wait.as_millis().max(1).to_string(), "1"),
        Pace::Batched => ("250".to_owned(), "65536"),
    }
}

/// The properties of a consumer in `group` at `pace`, before the configured extra ones.
fn consumer_defaults(
    group: &str,
    session_ms: u128,
    pace: Pace,
    prompt_wait: Duration,
) -> [(&'static str, String); 8] {
    let (wait_ms, min_bytes) = fetch_settings(pace, prompt_wait);
    [
        ("group.id", group.to_owned()),
        ("enable.auto.commit", "false".into()),
        ("auto.offset.reset", "earliest".into()),
        ("enable.partition.eof", "false".into()),
        ("session.timeout.ms", session_ms.to_string()),
        ("heartbeat.interval.ms", (session_ms / 3).max(1).to_string()),
        ("fetch.wait.max.ms", wait_ms),
        ("fetch.min.bytes", min_bytes.into()),
    ]
}

/// Connection settings of the Kafka adapter.
#[derive(Clone)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated `host:port` (`KAFKA_BROKERS`).
    pub brokers: String,
    /// Consumer-group session timeout; a consumer that stops heartbeating leaves after this.
    pub session_timeout: Duration,
    /// The client id the broker sees (logs, quotas).
    pub client_id: String,
    /// The longest the broker may hold a prompt subscriber's fetch (`KAFKA_FETCH_WAIT_MS`).
    pub prompt_fetch_wait: Duration,
    /// Further librdkafka properties, applied last to every client (they override the defaults).
    pub extra: Vec<(String, String)>,
}

impl KafkaConfig {
    /// Defaults for `brokers`: 10 s session timeout, client id `bloody-sweet`, no extra properties.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            session_timeout: Duration::from_secs(10),
            client_id: "bloody-sweet".to_owned(),
            prompt_fetch_wait: DEFAULT_PROMPT_FETCH_WAIT,
            extra: Vec::new(),
        }
    }

    /// Sets how long the broker may hold a prompt subscriber's fetch and returns the config.
    pub fn with_prompt_fetch_wait(mut self, wait: Duration) -> Self {
        self.prompt_fetch_wait = wait;
        self
    }

    /// Sets the session timeout and returns the config.
    pub fn with_session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// Adds a librdkafka property and returns the config.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.push((key.into(), value.into()));
        self
    }

    /// The properties shared by every client, extra properties last.
    fn client_config(&self, defaults: &[(&str, String)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id);
        for (key, value) in defaults {
            config.set(*key, value);
        }
        for (key, value) in &self.extra {
            config.set(key, value);
        }
        config
    }
}

impl std::fmt::Debug for KafkaConfig {
    /// Extra properties may hold credentials (`sasl.password`): only their names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let extra: Vec<&str> = self.extra.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("session_timeout", &self.session_timeout)
            .field("client_id", &self.client_id)
            .field("prompt_fetch_wait", &self.prompt_fetch_wait)
            .field("extra", &extra)
            .finish()
    }
}

/// The Kafka message bus: one idempotent producer and one admin client, consumers per subscription.
pub struct KafkaBus {
    config: KafkaConfig,
    /// Replaced when librdkafka reports a fatal producer error (e.g. a broker that lost its
    /// state fences the idempotent producer); never held across an await.
    producer: std::sync::RwLock<FutureProducer>,
    admin: Arc<AdminClient<DefaultClientContext>>,
}

impl std::fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBus")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl KafkaBus {
    /// Creates the producer and admin client (connections are made lazily, on first use).
    pub fn new(config: KafkaConfig) -> Result<Self, BusError> {
        if config.brokers.trim().is_empty() {
            return Err(BusError::Config("no Kafka brokers given".into()));
        }
        let producer = create_producer(&config)?;
        let admin = config
            // Describing a topic must never create it.
            .client_config(&[("allow.auto.create.topics", "false".into())])
            .create::<AdminClient<DefaultClientContext>>()
            .map_err(|e| BusError::Config(format!("cannot create Kafka admin client: {e}")))?;
        tracing::info!(brokers = %config.brokers, client_id = %config.client_id, "kafka bus created");
        Ok(Self {
            config,
            producer: std::sync::RwLock::new(producer),
            admin: Arc::new(admin),
        })
    }

    /// The current producer (a cheap handle).
    fn producer(&self) -> FutureProducer {
        match self.producer.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the producer if librdkafka declared it unusable, or if the broker refused its
    /// idempotence state (`fenced`: e.g. a broker that lost its state answers `ProducerFenced`
    /// to every later record); returns whether it did.
    fn replace_broken_producer(&self, fenced: bool) -> bool {
        let current = self.producer();
        match current.client().fatal_error() {
            Some((code, reason)) => {
                tracing::warn!(%code, %reason, "kafka producer failed fatally; creating a new one");
            }
            None if fenced => {
                tracing::warn!("kafka producer fenced by the broker; creating a new one");
            }
            None => return false,
        }
        match create_producer(&self.config) {
            Ok(fresh) => {
                match self.producer.write() {
                    Ok(mut guard) => *guard = fresh,
                    Err(poisoned) => *poisoned.into_inner() = fresh,
                }
                true
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot create a new kafka producer");
                false
            }
        }
    }

    /// The configuration this bus was created with.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// Enqueues one record, waiting while the local queue is full; returns its delivery report.
    async fn enqueue(
        producer: &FutureProducer,
        record: &OutgoingRecord,
    ) -> Result<rdkafka::producer::DeliveryFuture, KafkaError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (name, value) in &record.headers {
            headers = headers.insert(Header {
                key: name,
                value: Some(value),
            });
        }
        let mut pending = FutureRecord::to(&record.topic)
            .key(&record.key)
            .payload(&record.payload)
            .headers(headers);
        loop {
            match producer.send_result(pending) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    pending = back;
                    tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                }
                Err((error, _)) => return Err(error),
            }
        }
    }
}

#[async_trait::async_trait]
impl MessageBus for KafkaBus {
    async fn ensure_topics(&self, topics: &[&str], partitions: i32) -> Result<(), BusError> {
        crate::check_topics_request(topics, partitions)?;
        let new_topics: Vec<NewTopic<'_>> = topics
            .iter()
            // Replication factor -1: the broker's default.
            .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(-1)))
            .collect();
        let options = AdminOptions::new()
            .request_timeout(Some(ADMIN_TIMEOUT))
            .operation_timeout(Some(ADMIN_TIMEOUT));
        let results = self
            .admin
            .create_topics(new_topics.iter(), &options)
            .await
            .map_err(|e| BusError::Topics {
                reason: e.to_string(),
            })?;
        for result in results {
            match result {
                Ok(topic) => tracing::info!(topic = %topic, partitions, "topic created"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(BusError::Topics {
                        reason: format!("{topic}: {code}"),
                    });
                }
            }
        }
        Ok(())
    }

    async fn partitions(&self, topic: &str) -> Result<Option<i32>, BusError> {
        crate::check_topic_names(&[topic])?;
        let admin = self.admin.clone();
        let name = topic.to_owned();
        // librdkafka's metadata call blocks its caller.
        let metadata = tokio::task::spawn_blocking(move || {
            admin.inner().fetch_metadata(Some(&name), ADMIN_TIMEOUT)
        })
        .await
        .map_err(|e| BusError::Topics {
            reason: format!("metadata task failed: {e}"),
        })?
        .map_err(|e| BusError::Topics {
            reason: format!("metadata of {topic}: {e}"),
        })?;
        match metadata.topics().iter().find(|t| t.name() == topic) {
            Some(found) if found.error().is_none() => Ok(Some(
                i32::try_from(found.partitions().len()).unwrap_or(i32::MAX),
            )),
            _ => Ok(None),
        }
    }

    async fn publish(&self, records: Vec<OutgoingRecord>) -> Result<(), BusError> {
        let total = records.len();
        if total == 0 {
            return Ok(());
        }
        let producer = self.producer();
        let mut deliveries = Vec::with_capacity(total);
        for record in &records {
            match Self::enqueue(&producer, record).await {
                Ok(delivery) => deliveries.push(delivery),
                Err(error) => {
                    self.replace_broken_producer(breaks_idempotence(&error));
                    return Err(BusError::Publish {
                        failed: total - deliveries.len(),
                        total,
                        reason: format!("cannot enqueue a record for {}: {error}", record.topic),
                    });
                }
            }
        }
        let mut failed = 0;
        let mut first_failure = None;
        let mut fenced = false;
        for report in join_all(deliveries).await {
            let failure = match report {
                Ok(Ok(_)) => continue,
                Ok(Err((error, _))) => {
                    fenced |= breaks_idempotence(&error);
                    error.to_string()
                }
                Err(_canceled) => "the producer dropped the delivery report".to_owned(),
            };
            failed += 1;
            first_failure.get_or_insert(failure);
        }
        match first_failure {
            None => {
                tracing::debug!(records = total, "records published");
                Ok(())
            }
            Some(reason) => {
                self.replace_broken_producer(fenced);
                Err(BusError::Publish {
                    failed,
                    total,
                    reason,
                })
            }
        }
    }

    async fn subscribe(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Consumer>, BusError> {
        self.subscribe_at(group, topics, Pace::Prompt).await
    }

    async fn subscribe_at(
        &self,
        group: &str,
        topics: &[&str],
        pace: Pace,
    ) -> Result<Box<dyn Consumer>, BusError> {
        crate::check_group_name(group)?;
        crate::check_topic_names(topics)?;
        let session_ms = self.config.session_timeout.as_millis().max(1);
        let failure = |reason: String| BusError::Subscribe {
            group: group.to_owned(),
            reason,
        };
        let consumer: StreamConsumer = self
            .config
            .client_config(&consumer_defaults(
                group,
                session_ms,
                pace,
                self.config.prompt_fetch_wait,
            ))
            .create()
            .map_err(|e| failure(format!("cannot create Kafka consumer: {e}")))?;
        consumer
            .subscribe(topics)
            .map_err(|e| failure(e.to_string()))?;
        tracing::info!(group, ?topics, "consumer subscribed");
        Ok(Box::new(KafkaConsumer {
            consumer: Arc::new(consumer),
            group: group.to_owned(),
        }))
    }

    fn adapter(&self) -> &'static str {
        "kafka"
    }
}

/// Whether a produce error means the broker no longer accepts this producer's idempotence
/// state, so only a new producer (a new producer id) can publish again.
fn breaks_idempotence(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::UnknownProducerId
                | RDKafkaErrorCode::OutOfOrderSequenceNumber
                | RDKafkaErrorCode::InvalidProducerIdMapping
                | RDKafkaErrorCode::Fatal
        )
    )
}

/// The properties of the producer, before the configured extra ones.
fn producer_defaults() -> [(&'static str, String); 6] {
    [
        ("enable.idempotence", "true".into()),
        ("acks", "all".into()),
        // 10 ms merges the concurrent publishes of the relay and of the saga's and workers'
        // lanes into fewer, larger produce requests and batches: tansu pays for each request
        // and lists every stored batch on each fetch with news. Against 2 ms on the ordering
        // benchmark: tansu 0.47 → 0.30 cores, and with the 15 ms prompt fetch wait more
        // orders/s at a lower p99 (README). librdkafka's own default is 5 ms.
        ("linger.ms", "10".into()),
        ("batch.num.messages", "10000".into()),
        ("batch.size", (1024 * 1024).to_string()),
        (
            "message.timeout.ms",
            MESSAGE_TIMEOUT.as_millis().to_string(),
        ),
    ]
}

/// Creates the idempotent, `acks=all` producer.
fn create_producer(config: &KafkaConfig) -> Result<FutureProducer, BusError> {
    config
        .client_config(&producer_defaults())
        .create::<FutureProducer>()
        .map_err(|e| BusError::Config(format!("cannot create Kafka producer: {e}")))
}

/// A member of a Kafka consumer group; leaves the group when dropped (blocking briefly).
pub struct KafkaConsumer {
    consumer: Arc<StreamConsumer>,
    group: String,
}

impl Drop for KafkaConsumer {
    /// Leaves the group and closes the consumer off the async runtime: librdkafka's close can
    /// block (for a long time if the group coordinator is slow), which must neither stall a
    /// runtime worker nor leave a member that heartbeats while holding partitions.
    fn drop(&mut self) {
        self.consumer.unsubscribe();
        let consumer = self.consumer.clone();
        let group = self.group.clone();
        let closing = std::thread::Builder::new()
            .name("kafka-consumer-close".into())
            .spawn(move || {
                drop(consumer);
                tracing::debug!(group, "kafka consumer closed");
            });
        if let Err(err) = closing {
            tracing::warn!(error = %err, "cannot close the kafka consumer on its own thread");
        }
    }
}

/// Whether a consumer error is a connection problem that librdkafka recovers from by itself.
fn is_transient(error: &KafkaError) -> bool {
    let code = match error {
        KafkaError::MessageConsumption(code) | KafkaError::Global(code) => *code,
        _ => return false,
    };
    matches!(
        code,
        RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::NetworkException
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::OperationTimedOut
    )
}

/// Copies a consumed Kafka message into the port's [`Message`].
fn to_message(message: &BorrowedMessage<'_>) -> Message {
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default();
    Message {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().unwrap_or_default().to_vec(),
        headers,
    }
}

#[async_trait::async_trait]
impl Consumer for KafkaConsumer {
    async fn recv(&mut self) -> Result<Message, BusError> {
        loop {
            match self.consumer.recv().await {
                Ok(message) => return Ok(to_message(&message)),
                Err(error) if is_transient(&error) => {
                    tracing::warn!(group = %self.group, %error, "kafka connection problem, retrying");
                }
                Err(error) => {
                    return Err(BusError::Receive {
                        reason: error.to_string(),
                    });
                }
            }
        }
    }

    async fn commit(&mut self, message: &Message) -> Result<(), BusError> {
        let offset = message.offset + 1;
        let failure = |reason: String| BusError::Commit {
            topic: message.topic.clone(),
            partition: message.partition,
            offset,
            reason,
        };
        let mut partitions = TopicPartitionList::new();
        partitions
            .add_partition_offset(&message.topic, message.partition, Offset::Offset(offset))
            .map_err(|e| failure(e.to_string()))?;
        let consumer = Arc::clone(&self.consumer);
        // A synchronous commit waits for the broker; keep it off the async workers.
        tokio::task::spawn_blocking(move || consumer.commit(&partitions, CommitMode::Sync))
            .await
            .map_err(|e| failure(format!("commit task failed: {e}")))?
            .map_err(|e| failure(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_consumers_wait_longer_for_more_than_prompt_ones() {
        let config = KafkaConfig::new("b:1");
        let wait = config.prompt_fetch_wait;
        let prompt = config.client_config(&consumer_defaults("g", 6000, Pace::Prompt, wait));
        let batched = config.client_config(&consumer_defaults("g", 6000, Pace::Batched, wait));
        assert_eq!(prompt.get("fetch.wait.max.ms"), Some("15"));
        assert_eq!(prompt.get("fetch.min.bytes"), Some("1"));
        assert_eq!(batched.get("fetch.wait.max.ms"), Some("250"));
        assert_eq!(batched.get("fetch.min.bytes"), Some("65536"));
        assert_eq!(batched.get("heartbeat.interval.ms"), Some("2000"));
        // The prompt wait is a setting of its own, which batched consumers do not follow.
        let quick = Duration::from_millis(10);
        let prompt = config.client_config(&consumer_defaults("g", 6000, Pace::Prompt, quick));
        let batched = config.client_config(&consumer_defaults("g", 6000, Pace::Batched, quick));
        assert_eq!(prompt.get("fetch.wait.max.ms"), Some("10"));
        assert_eq!(batched.get("fetch.wait.max.ms"), Some("250"));
        // A diagnostic property still overrides both.
        let tuned = KafkaConfig::new("b:1").with("fetch.wait.max.ms", "20");
        let batched = tuned.client_config(&consumer_defaults("g", 6000, Pace::Batched, wait));
        assert_eq!(batched.get("fetch.wait.max.ms"), Some("20"));
    }

    #[test]
    fn the_producer_is_idempotent_and_lingers_briefly() {
        let producer = KafkaConfig::new("b:1").client_config(&producer_defaults());
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        assert_eq!(producer.get("acks"), Some("all"));
        // Long enough to merge concurrent publishes, short beside a saga hop.
        assert_eq!(producer.get("linger.ms"), Some("10"));
    }

    #[test]
    fn debug_hides_extra_values() {
        let config = KafkaConfig::new("localhost:9092").with("sasl.password", "hunter2");
        let shown = format!("{config:?}");
        assert!(shown.contains("sasl.password"));
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn extra_properties_override_defaults() {
        let config = KafkaConfig::new("b:1").with("linger.ms", "50");
        let client = config.client_config(&[("linger.ms", "5".into())]);
        assert_eq!(client.get("linger.ms"), Some("50"));
        assert_eq!(client.get("bootstrap.servers"), Some("b:1"));
    }

    #[test]
    fn empty_brokers_are_a_config_error() {
        let err = KafkaBus::new(KafkaConfig::new(" ")).unwrap_err();
        assert_eq!(err.code(), "BUS_CONFIG");
    }

    #[test]
    fn only_connection_errors_are_transient() {
        assert!(is_transient(&KafkaError::MessageConsumption(
            RDKafkaErrorCode::AllBrokersDown
        )));
        assert!(!is_transient(&KafkaError::MessageConsumption(
            RDKafkaErrorCode::UnknownTopicOrPartition
        )));
    }
}
