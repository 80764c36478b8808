//! The Toss Payment object, as the Toss API (and the test server) returns it.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Deserializer, Serialize};

/// Where a Toss payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TossStatus {
    /// Created, not yet authenticated.
    Ready,
    /// Authenticated by the customer, waiting for the merchant's confirm.
    InProgress,
    /// A virtual account waits for the deposit.
    WaitingForDeposit,
    /// Confirmed: money is taken.
    Done,
    /// Fully cancelled.
    Canceled,
    /// Partly cancelled; `balanceAmount` is what is left.
    PartialCanceled,
    /// The confirm failed.
    Aborted,
    /// Not confirmed in time (30 minutes after authentication).
    Expired,
    /// A status this client does not know yet.
    #[serde(other)]
    Unknown,
}

impl TossStatus {
    /// Whether money was taken at some point (confirmed, possibly cancelled since).
    pub fn was_approved(self) -> bool {
        matches!(self, Self::Done | Self::Canceled | Self::PartialCanceled)
    }
}

/// The receipt of a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TossReceipt {
    /// Where the customer sees the receipt.
    pub url: String,
}

/// One cancellation (refund) of a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TossCancel {
    /// KRW cancelled.
    pub cancel_amount: i64,
    /// Why.
    pub cancel_reason: String,
    /// When.
    pub canceled_at: DateTime<FixedOffset>,
    /// Toss's id of this cancel transaction, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_key: Option<String>,
}

/// A Toss Payment object (the fields this platform reads; others are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TossPayment {
    /// Toss's key of the payment.
    pub payment_key: String,
    /// The merchant's order id.
    pub order_id: String,
    /// Where the payment stands.
    pub status: TossStatus,
    /// KRW of the payment.
    pub total_amount: i64,
    /// KRW not cancelled yet.
    pub balance_amount: i64,
    /// How the customer paid (Toss names it, e.g. `카드`, `간편결제`).
    #[serde(default)]
    pub method: Option<String>,
    /// When the payment was confirmed.
    #[serde(default)]
    pub approved_at: Option<DateTime<FixedOffset>>,
    /// The receipt, once confirmed.
    #[serde(default)]
    pub receipt: Option<TossReceipt>,
    /// Cancellations, oldest first (Toss sends `null` when there are none).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub cancels: Vec<TossCancel>,
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_toss_payment() {
        let json = r#"{
            "mId": "tosspayments", "version": "2022-11-16",
            "paymentKey": "tviva20240101", "orderId": "o-1", "orderName": "cake",
            "status": "PARTIAL_CANCELED", "totalAmount": 15000, "balanceAmount": 10000,
            "method": "카드", "approvedAt": "2024-01-01T12:00:00+09:00",
            "receipt": {"url": "https://example.test/r"},
            "cancels": [{"cancelAmount": 5000, "cancelReason": "late",
                         "canceledAt": "2024-01-01T13:00:00+09:00", "transactionKey": "tx-1"}]
        }"#;
        let p: TossPayment = serde_json::from_str(json).unwrap();
        assert_eq!(p.status, TossStatus::PartialCanceled);
        assert!(p.status.was_approved());
        assert_eq!(p.cancels[0].cancel_amount, 5000);
        assert_eq!(p.receipt.unwrap().url, "https://example.test/r");
    }

    #[test]
    fn tolerates_nulls_and_new_statuses() {
        let json = r#"{"paymentKey": "k", "orderId": "o", "status": "SOMETHING_NEW",
            "totalAmount": 1, "balanceAmount": 1, "method": null, "approvedAt": null,
            "receipt": null, "cancels": null}"#;
        let p: TossPayment = serde_json::from_str(json).unwrap();
        assert_eq!(p.status, TossStatus::Unknown);
        assert!(p.cancels.is_empty() && p.approved_at.is_none());
    }
}
