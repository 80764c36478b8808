//! Personal data that review texts may contain, masked before they reach a prompt.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// What an e-mail address is replaced with.
pub const EMAIL_MASK: &str = "(이메일 비공개)";
/// What a phone number is replaced with.
pub const PHONE_MASK: &str = "(전화번호 비공개)";

// Both patterns are constants covered by the tests below: compiling them cannot fail at run time.
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
        .expect("the e-mail pattern is valid")
});

/// Korean phone numbers: `0` + area or mobile prefix, or `+82` + prefix, then 3-4 and 4
/// digits, with or without separators (`010-1234-5678`, `02)123-4567`, `+82 10 1234 5678`).
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?:\+82[ .\-]?(?:\(0\))?0?[1-9][0-9]?|\(?0[1-9][0-9]?\)?)[ .\-)]?[0-9]{3,4}[ .\-]?[0-9]{4}",
    )
    .expect("the phone pattern is valid")
});

/// `text` with e-mail addresses and phone numbers replaced by [`EMAIL_MASK`] and
/// [`PHONE_MASK`]; borrowed when there is nothing to mask.
pub fn mask(text: &str) -> Cow<'_, str> {
    let emailless = EMAIL.replace_all(text, EMAIL_MASK);
    match mask_phones(&emailless) {
        Cow::Borrowed(_) => emailless,
        Cow::Owned(masked) => Cow::Owned(masked),
    }
}

fn mask_phones(text: &str) -> Cow<'_, str> {
    let mut masked = String::new();
    let mut copied = 0;
    for found in PHONE.find_iter(text) {
        // A match glued to more digits is part of a longer number (an order number, a date).
        let glued_before = text[..found.start()]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_digit());
        let glued_after = text[found.end()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit());
        if glued_before || glued_after {
            continue;
        }
        masked.push_str(&text[copied..found.start()]);
        masked.push_str(PHONE_MASK);
        copied = found.end();
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    masked.push_str(&text[copied..]);
    Cow::Owned(masked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_emails_and_phone_numbers() {
        let text = "문의는 cake.lover+1@example.co.kr 또는 010-1234-5678로 주세요. \
                    매장 02)123-4567, 해외 +82 10 9876 5432, 2 01098765432입니다";
        let masked = mask(text);
        assert!(!masked.contains('@'), "{masked}");
        for digits in ["1234", "5678", "4567", "9876", "5432"] {
            assert!(!masked.contains(digits), "{digits} left in {masked}");
        }
        assert_eq!(masked.matches(EMAIL_MASK).count(), 1);
        assert_eq!(masked.matches(PHONE_MASK).count(), 4, "{masked}");
        assert!(masked.starts_with("문의는 (이메일 비공개) 또는 (전화번호 비공개)로 주세요."));
    }

    #[test]
    fn leaves_prices_dates_and_counts_alone() {
        for text in [
            "가격은 32,000원이고 2024.01.05에 샀어요",
            "케이크 3개, 20240105 주문번호, 주문 20101234567890",
            "별점 4.5점, 1kg 넘어요",
            "",
        ] {
            assert!(matches!(mask(text), Cow::Borrowed(_)), "{text} was changed");
        }
    }
}
