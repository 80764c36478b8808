//! A small aggregate used to test the kernel.

use eventstore::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub open: bool,
    pub balance: u64,
}

#[derive(Debug, Clone)]
pub enum Command {
    Open { owner: String },
    Deposit { amount: u64 },
    Withdraw { amount: u64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    Opened { owner: String },
    Deposited { amount: u64 },
    Withdrawn { amount: u64 },
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        match self {
            Event::Opened { .. } => "AccountOpened",
            Event::Deposited { .. } => "MoneyDeposited",
            Event::Withdrawn { .. } => "MoneyWithdrawn",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AccountError {
    #[error("account already open")]
    AlreadyOpen,
    #[error("account is not open")]
    NotOpen,
    #[error("insufficient funds")]
    Insufficient,
}

impl Aggregate for Account {
    const CATEGORY: &'static str = "account";
    type Command = Command;
    type Event = Event;
    type Error = AccountError;

    fn handle(&self, command: Command) -> Result<Vec<Event>, AccountError> {
        match command {
            Command::Open { owner } if !self.open => Ok(vec![Event::Opened { owner }]),
            Command::Open { .. } => Err(AccountError::AlreadyOpen),
            _ if !self.open => Err(AccountError::NotOpen),
            Command::Deposit { amount } => Ok(vec![Event::Deposited { amount }]),
            Command::Withdraw { amount } if amount > self.balance => {
                Err(AccountError::Insufficient)
            }
            Command::Withdraw { amount } => Ok(vec![Event::Withdrawn { amount }]),
        }
    }

    fn apply(&mut self, event: &Event) {
        match event {
            Event::Opened { .. } => self.open = true,
            Event::Deposited { amount } => self.balance += amount,
            Event::Withdrawn { amount } => self.balance -= amount,
        }
    }
}

#[cfg(test)]
mod given_when_then {
    use super::*;
    use eventstore::testing::AggregateTest;

    #[test]
    fn opens_once() {
        AggregateTest::<Account>::given_no_previous_events()
            .when(Command::Open {
                owner: "kim".into(),
            })
            .then_expect_events(vec![Event::Opened {
                owner: "kim".into(),
            }]);
        AggregateTest::<Account>::given(vec![Event::Opened {
            owner: "kim".into(),
        }])
        .when(Command::Open {
            owner: "lee".into(),
        })
        .then_expect_error_message("account already open");
    }

    #[test]
    fn withdraws_only_what_is_there() {
        let given = vec![
            Event::Opened {
                owner: "kim".into(),
            },
            Event::Deposited { amount: 10 },
        ];
        let state = AggregateTest::<Account>::given(given.clone())
            .when(Command::Withdraw { amount: 4 })
            .then_expect_events(vec![Event::Withdrawn { amount: 4 }]);
        assert_eq!(state.balance, 6);
        AggregateTest::<Account>::given(given)
            .when(Command::Withdraw { amount: 11 })
            .then_expect_error(|e| *e == AccountError::Insufficient);
        AggregateTest::<Account>::given_no_previous_events()
            .when(Command::Deposit { amount: 1 })
            .then_expect_error(|e| *e == AccountError::NotOpen);
    }
}
