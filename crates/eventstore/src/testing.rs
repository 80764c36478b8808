//! Given/when/then tests for aggregates, with no I/O.
//!
//! ```ignore
//! AggregateTest::<Account>::given(vec![Opened { .. }])
//!     .when(Deposit { amount: 5 })
//!     .then_expect_events(vec![Deposited { amount: 5 }]);
//! ```

use crate::aggregate::Aggregate;

/// A scenario: the events that already happened.
pub struct AggregateTest<A: Aggregate> {
    state: A,
}

impl<A: Aggregate> AggregateTest<A> {
    /// Starts from these past events.
    pub fn given(events: Vec<A::Event>) -> Self {
        let mut state = A::default();
        for event in &events {
            state.apply(event);
        }
        Self { state }
    }

    /// Starts from a new aggregate.
    pub fn given_no_previous_events() -> Self {
        Self::given(Vec::new())
    }

    /// Handles a command against the given state.
    pub fn when(self, command: A::Command) -> Outcome<A> {
        let result = self.state.handle(command);
        Outcome {
            state: self.state,
            result,
        }
    }
}

/// What a command did, to assert on.
pub struct Outcome<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> Outcome<A>
where
    A::Event: PartialEq,
{
    /// Asserts the command produced exactly these events.
    #[track_caller]
    pub fn then_expect_events(self, expected: Vec<A::Event>) -> A {
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "unexpected events");
                let mut state = self.state;
                for event in &events {
                    state.apply(event);
                }
                state
            }
            Err(err) => panic!("expected events {expected:?}, got error: {err}"),
        }
    }

    /// Asserts the command was refused with an error whose message is `message`.
    #[track_caller]
    pub fn then_expect_error_message(self, message: &str) {
        match self.result {
            Ok(events) => panic!("expected error {message:?}, got events {events:?}"),
            Err(err) => assert_eq!(err.to_string(), message),
        }
    }

    /// Asserts the command was refused with an error matching `check`.
    #[track_caller]
    pub fn then_expect_error(self, check: impl FnOnce(&A::Error) -> bool) {
        match self.result {
            Ok(events) => panic!("expected an error, got events {events:?}"),
            Err(err) => assert!(check(&err), "unexpected error: {err}"),
        }
    }
}
