//! The one error type of the bus port, with stable codes.

/// Everything that can go wrong on the message bus, whichever adapter is behind it.
///
/// Variants carry adapter messages as text so that no adapter type (rdkafka) leaks into the port.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The adapter's configuration is invalid or its client could not be created.
    #[error("invalid message bus configuration: {0}")]
    Config(String),
    /// A caller passed an argument the bus cannot accept (no topics, zero partitions, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The topic does not exist (the embedded adapter requires `ensure_topics` first).
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// Topics could not be created; some of them may have been.
    #[error("cannot create topics: {reason}")]
    Topics {
        /// What the broker or client said.
        reason: String,
    },
    /// Some records were not acknowledged; any of the batch may still have been written.
    #[error(
        "publish failed for {failed} of {total} records (some may have been written): {reason}"
    )]
    Publish {
        /// How many records failed.
        failed: usize,
        /// How many records the batch held.
        total: usize,
        /// The first failure's message.
        reason: String,
    },
    /// The consumer could not join its group or subscribe to its topics.
    #[error("cannot subscribe group {group:?}: {reason}")]
    Subscribe {
        /// The consumer group.
        group: String,
        /// What the broker or client said.
        reason: String,
    },
    /// The consumer failed while waiting for a message.
    #[error("cannot receive: {reason}")]
    Receive {
        /// What the broker or client said.
        reason: String,
    },
    /// A committed offset was not stored (for example after the partition moved to another consumer).
    #[error("cannot commit offset {offset} of {topic}/{partition}: {reason}")]
    Commit {
        /// The message's topic.
        topic: String,
        /// The message's partition.
        partition: i32,
        /// The offset that was to be committed (the message's offset + 1).
        offset: i64,
        /// What the broker or client said.
        reason: String,
    },
}

impl BusError {
    /// A stable, machine-readable code for this error (used as `extensions.code` and in logs).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Config(_) => "BUS_CONFIG",
            Self::InvalidArgument(_) => "BUS_INVALID_ARGUMENT",
            Self::UnknownTopic(_) => "BUS_UNKNOWN_TOPIC",
            Self::Topics { .. } => "BUS_TOPICS_FAILED",
            Self::Publish { .. } => "BUS_PUBLISH_FAILED",
            Self::Subscribe { .. } => "BUS_SUBSCRIBE_FAILED",
            Self::Receive { .. } => "BUS_RECEIVE_FAILED",
            Self::Commit { .. } => "BUS_COMMIT_FAILED",
        }
    }

    /// Whether the failed operation may still have taken effect ("maybe done", never "certainly aborted").
    ///
    /// After a failed `publish` this is true: retry the whole batch (consumers are idempotent),
    /// never assume that nothing was written.
    pub fn may_have_written(&self) -> bool {
        matches!(
            self,
            Self::Topics { .. } | Self::Publish { .. } | Self::Commit { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_distinct() {
        let errors = [
            BusError::Config(String::new()),
            BusError::InvalidArgument(String::new()),
            BusError::UnknownTopic(String::new()),
            BusError::Topics {
                reason: String::new(),
            },
            BusError::Publish {
                failed: 1,
                total: 2,
                reason: String::new(),
            },
            BusError::Subscribe {
                group: String::new(),
                reason: String::new(),
            },
            BusError::Receive {
                reason: String::new(),
            },
            BusError::Commit {
                topic: String::new(),
                partition: 0,
                offset: 1,
                reason: String::new(),
            },
        ];
        let codes: Vec<_> = errors.iter().map(BusError::code).collect();
        let mut unique = codes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), codes.len());
        assert!(codes.iter().all(|c| c.starts_with("BUS_")));
    }

    #[test]
    fn publish_failure_is_maybe_done_unknown_topic_is_aborted() {
        let publish = BusError::Publish {
            failed: 1,
            total: 3,
            reason: "timed out".into(),
        };
        assert!(publish.may_have_written());
        assert!(!BusError::UnknownTopic("t".into()).may_have_written());
    }
}
