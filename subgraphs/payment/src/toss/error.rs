//! What Toss (or the road to it) said when a call did not succeed.

use serde::{Deserialize, Serialize};

/// Toss error codes this crate acts on. Toss has many more; every one is kept verbatim in
/// [`TossError::code`].
pub mod codes {
    /// The payment key was already confirmed.
    pub const ALREADY_PROCESSED_PAYMENT: &str = "ALREADY_PROCESSED_PAYMENT";
    /// Another payment of the same order id was already confirmed.
    pub const DUPLICATED_ORDER_ID: &str = "DUPLICATED_ORDER_ID";
    /// The card company declined.
    pub const REJECT_CARD_COMPANY: &str = "REJECT_CARD_COMPANY";
    /// The payment cannot be cancelled (it was never approved, say).
    pub const NOT_CANCELABLE_PAYMENT: &str = "NOT_CANCELABLE_PAYMENT";
    /// The payment was cancelled in full already: nothing is left to cancel.
    pub const ALREADY_CANCELED_PAYMENT: &str = "ALREADY_CANCELED_PAYMENT";
    /// The cancel amount exceeds what is left.
    pub const NOT_CANCELABLE_AMOUNT: &str = "NOT_CANCELABLE_AMOUNT";
    /// The card company or bank failed: "try again in a few minutes" (400).
    pub const PROVIDER_ERROR: &str = "PROVIDER_ERROR";
    /// A request came right after another on the same payment: "try again in a while" (403);
    /// the earlier one may have taken effect.
    pub const FORBIDDEN_CONSECUTIVE_REQUEST: &str = "FORBIDDEN_CONSECUTIVE_REQUEST";
    /// Toss failed internally.
    pub const FAILED_INTERNAL_SYSTEM_PROCESSING: &str = "FAILED_INTERNAL_SYSTEM_PROCESSING";
    /// The request is malformed or does not match the payment.
    pub const INVALID_REQUEST: &str = "INVALID_REQUEST";
    /// No payment has this key.
    pub const NOT_FOUND_PAYMENT: &str = "NOT_FOUND_PAYMENT";
    /// The payment session (a minted key) does not exist or expired.
    pub const NOT_FOUND_PAYMENT_SESSION: &str = "NOT_FOUND_PAYMENT_SESSION";
    /// The secret key is wrong.
    pub const UNAUTHORIZED_KEY: &str = "UNAUTHORIZED_KEY";
    /// A request with the same idempotency key is still being processed.
    pub const IDEMPOTENT_REQUEST_PROCESSING: &str = "IDEMPOTENT_REQUEST_PROCESSING";
    /// Ours: Toss did not answer in time; the request may or may not have taken effect.
    pub const TOSS_TIMEOUT: &str = "TOSS_TIMEOUT";
    /// Ours: Toss could not be reached (or the connection broke).
    pub const TOSS_UNREACHABLE: &str = "TOSS_UNREACHABLE";
    /// Ours: Toss answered something this client cannot read.
    pub const TOSS_BAD_RESPONSE: &str = "TOSS_BAD_RESPONSE";

    /// Answers Toss documents as temporary ("try again in a while"), though not 5xx: Toss keeps
    /// them under the idempotency key, so trying again means a new request. A refund refused
    /// so is asked for again later; a confirm answered `PROVIDER_ERROR` is still a failure of
    /// that payment key.
    pub const TRY_LATER: &[&str] = &[PROVIDER_ERROR, FORBIDDEN_CONSECUTIVE_REQUEST];

    /// Refusals of the payment itself that Toss answers with 400 rather than 403 (the card
    /// or account cannot pay this): declines like `REJECT_CARD_COMPANY`, for good.
    pub const DECLINES_AT_400: &[&str] = &[
        "INVALID_REJECT_CARD",
        "INVALID_CARD_EXPIRATION",
        "INVALID_STOPPED_CARD",
        "INVALID_CARD_LOST_OR_STOLEN",
        "INVALID_CARD_NUMBER",
        "INVALID_PASSWORD",
        "EXCEED_MAX_DAILY_PAYMENT_COUNT",
        "EXCEED_MAX_PAYMENT_AMOUNT",
        "EXCEED_MAX_CARD_INSTALLMENT_PLAN",
        "INVALID_CARD_INSTALLMENT_PLAN",
        "NOT_SUPPORTED_INSTALLMENT_PLAN_CARD_OR_MERCHANT",
        "NOT_ALLOWED_POINT_USE",
        "NOT_AVAILABLE_BANK",
        "BELOW_MINIMUM_AMOUNT",
    ];
}

/// The error body Toss sends: `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TossErrorBody {
    /// Toss's code, such as `REJECT_CARD_COMPANY`.
    pub code: String,
    /// Toss's message, meant for the customer.
    pub message: String,
}

/// A failed Toss call: Toss's own code and message, or one of ours (`TOSS_TIMEOUT`,
/// `TOSS_UNREACHABLE`, `TOSS_BAD_RESPONSE`) when Toss gave no readable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("toss {code} (http {}): {message}", status.map_or_else(|| "none".to_owned(), |s| s.to_string()))]
pub struct TossError {
    /// Toss's code (kept verbatim) or ours.
    pub code: String,
    /// Toss's message or ours.
    pub message: String,
    /// The HTTP status Toss answered with; `None` when there was no answer.
    pub status: Option<u16>,
}

impl TossError {
    /// An error Toss answered with.
    pub fn api(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            status: Some(status),
        }
    }

    /// An error without an answer from Toss.
    pub fn local(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            status: None,
        }
    }

    /// A request this client refuses to send.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::local(codes::INVALID_REQUEST, message)
    }

    /// Whether trying the same request again (with the same idempotency key) may succeed:
    /// timeouts, connection failures, 5xx, 429, and a request with the same idempotency key
    /// still being processed.
    pub fn is_transient(&self) -> bool {
        match self.status {
            None => matches!(
                self.code.as_str(),
                codes::TOSS_TIMEOUT | codes::TOSS_UNREACHABLE
            ),
            Some(status) => {
                status >= 500 || status == 429 || self.code == codes::IDEMPOTENT_REQUEST_PROCESSING
            }
        }
    }

    /// Whether the request may have taken effect at Toss although it failed (no answer, a
    /// 5xx, a success we could not read, still being processed under its idempotency key, or
    /// refused as coming right after another request, which may have gone through): reload
    /// the payment before deciding anything.
    pub fn maybe_done(&self) -> bool {
        match self.status {
            None => self.code != codes::INVALID_REQUEST,
            Some(status) => {
                status >= 500
                    || (200..300).contains(&status)
                    || self.code == codes::FORBIDDEN_CONSECUTIVE_REQUEST
                    || self.code == codes::IDEMPOTENT_REQUEST_PROCESSING
            }
        }
    }

    /// Whether Toss refused the payment itself (a 403: declined card, limits, not cancelable;
    /// or one of the declines Toss answers with 400, [`codes::DECLINES_AT_400`]), as opposed
    /// to a malformed request, a transient failure or a "try again in a while".
    pub fn is_rejection(&self) -> bool {
        (self.status == Some(403) && self.code != codes::FORBIDDEN_CONSECUTIVE_REQUEST)
            || (self.status == Some(400) && codes::DECLINES_AT_400.contains(&self.code.as_str()))
    }

    /// Whether Toss asked to try again in a while ([`codes::TRY_LATER`]).
    pub fn is_try_later(&self) -> bool {
        self.status.is_some() && codes::TRY_LATER.contains(&self.code.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_failures() {
        let declined = TossError::api(403, codes::REJECT_CARD_COMPANY, "declined");
        assert!(declined.is_rejection() && !declined.is_transient() && !declined.maybe_done());
        let provider = TossError::api(500, codes::PROVIDER_ERROR, "boom");
        assert!(provider.is_transient() && provider.maybe_done());
        let timeout = TossError::local(codes::TOSS_TIMEOUT, "slow");
        assert!(timeout.is_transient() && timeout.maybe_done());
        let invalid = TossError::invalid("bad key");
        assert!(!invalid.is_transient() && !invalid.maybe_done());
        assert!(TossError::api(429, "TOO_MANY_REQUESTS", "slow down").is_transient());
        // Toss answers some declines with 400: refusals all the same, unlike a bad request.
        let stopped = TossError::api(400, "INVALID_STOPPED_CARD", "정지된 카드 입니다.");
        assert!(stopped.is_rejection() && !stopped.is_transient() && !stopped.maybe_done());
        assert!(!TossError::api(400, codes::INVALID_REQUEST, "bad").is_rejection());
        assert_eq!(provider.to_string(), "toss PROVIDER_ERROR (http 500): boom");
        // "Try again in a while": not a refusal of the payment, and the earlier request may
        // have gone through.
        let consecutive = TossError::api(403, codes::FORBIDDEN_CONSECUTIVE_REQUEST, "잠시 후");
        assert!(!consecutive.is_rejection() && consecutive.is_try_later());
        assert!(consecutive.maybe_done() && !consecutive.is_transient());
        assert!(TossError::api(400, codes::PROVIDER_ERROR, "잠시 후").is_try_later());
        assert!(!declined.is_try_later() && !timeout.is_try_later());
        // A success whose body we could not read: done at Toss, as far as anyone knows.
        let unreadable = TossError::api(200, codes::TOSS_BAD_RESPONSE, "unreadable payment");
        assert!(unreadable.maybe_done() && !unreadable.is_transient());
        let processing = TossError::api(409, codes::IDEMPOTENT_REQUEST_PROCESSING, "처리 중");
        assert!(processing.maybe_done() && processing.is_transient());
        assert!(!unreadable.is_rejection() && !unreadable.is_try_later());
    }
}
