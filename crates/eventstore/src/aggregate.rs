//! The aggregate kernel: business rules in `handle`, state changes in `apply`.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A domain event: a past-tense fact with a stable type name.
pub trait DomainEvent:
    Serialize + DeserializeOwned + Clone + std::fmt::Debug + Send + Sync
{
    /// The stored event type, such as `OrderPlaced`.
    fn event_type(&self) -> &'static str;
}

/// An event-sourced aggregate.
///
/// `handle` decides (and may refuse) without side effects; `apply` only folds an event into
/// the state and must accept every event `handle` ever produced.
pub trait Aggregate: Default + Clone + Serialize + DeserializeOwned + Send + Sync {
    /// Stream category, such as `order`.
    const CATEGORY: &'static str;
    /// What can be asked of the aggregate.
    type Command: Clone + Send + Sync;
    /// What the aggregate records.
    type Event: DomainEvent;
    /// Why a command is refused.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Decides which events a command produces given the current state.
    fn handle(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Folds one event into the state.
    fn apply(&mut self, event: &Self::Event);
}
