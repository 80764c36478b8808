//! The rules every product input obeys: limits, the product id, and the checks that turn
//! raw input into valid values (or a [`ProductError`] naming the field).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Highest price accepted, in KRW.
pub const MAX_PRICE: i64 = 10_000_000;
/// Most units one restock (or the initial stock) may add.
pub const MAX_RESTOCK: i64 = 10_000;
/// Most units one reservation of one product may hold.
pub const MAX_RESERVE: i64 = 10_000;
/// Most units a product may have on hand.
pub const MAX_ON_HAND: u32 = 1_000_000;
/// Longest product id, in bytes.
pub const MAX_ID_LEN: usize = 64;
/// Longest reservation id, in bytes.
pub const MAX_RESERVATION_ID_LEN: usize = 128;
pub(crate) const MAX_NAME_CHARS: usize = 100;
pub(crate) const MAX_DESCRIPTION_CHARS: usize = 2_000;
pub(crate) const MAX_CATEGORY_CHARS: usize = 50;
pub(crate) const MAX_IMAGE_URL_LEN: usize = 2_048;

/// A product id: 1..=64 ASCII letters, digits and `-_.` (it is part of a stream id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProductId(String);

impl ProductId {
    /// Parses an id given from outside.
    pub fn parse(raw: &str) -> Result<Self, ProductError> {
        if valid_id(raw, MAX_ID_LEN) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ProductError::invalid(
                "id",
                format!("must be 1..={MAX_ID_LEN} ASCII letters, digits, '-', '_' or '.'"),
            ))
        }
    }

    /// A fresh id (a UUID v7).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProductId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `raw` is 1..=`max` ASCII letters, digits and `-_.`.
fn valid_id(raw: &str, max: usize) -> bool {
    !raw.is_empty()
        && raw.len() <= max
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
/// Why a product refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductError {
    /// An input is out of range or malformed; `field` names it.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending input, e.g. `price`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The product was never created.
    #[error("the product does not exist")]
    NotFound,
    /// The id is taken by a product with other details.
    #[error("product {0} already exists with other details")]
    AlreadyExists(ProductId),
    /// Fewer units are available than requested.
    #[error("{}", out_of_stock(name, *available, *requested))]
    OutOfStock {
        /// The product's name.
        name: String,
        /// Units available.
        available: u32,
        /// Units requested.
        requested: u32,
    },
    /// The product is discontinued.
    #[error("'{name}' is discontinued and no longer sold")]
    NotOnSale {
        /// The product's name.
        name: String,
    },
}

fn out_of_stock(name: &str, available: u32, requested: u32) -> String {
    if available == 0 {
        format!("'{name}' is sold out, {requested} requested")
    } else {
        format!("only {available} of '{name}' left, {requested} requested")
    }
}

impl ProductError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "BAD_USER_INPUT",
            Self::NotFound => "NOT_FOUND",
            Self::AlreadyExists(_) => "ALREADY_EXISTS",
            Self::OutOfStock { .. } => "OUT_OF_STOCK",
            Self::NotOnSale { .. } => "NOT_ON_SALE",
        }
    }
}

/// Checks a reservation id: 1..=128 ASCII letters, digits and `-_.`.
pub fn reservation(reservation_id: &str) -> Result<(), ProductError> {
    if valid_id(reservation_id, MAX_RESERVATION_ID_LEN) {
        Ok(())
    } else {
        Err(ProductError::invalid(
            "reservation_id",
            format!("must be 1..={MAX_RESERVATION_ID_LEN} ASCII letters, digits, '-', '_' or '.'"),
        ))
    }
}

/// Checks a price in KRW.
pub(crate) fn price(price: i64) -> Result<i64, ProductError> {
    if (1..=MAX_PRICE).contains(&price) {
        Ok(price)
    } else {
        Err(ProductError::invalid(
            "price",
            format!("must be 1..={MAX_PRICE} KRW, got {price}"),
        ))
    }
}

/// Checks a unit count.
pub(crate) fn quantity(
    field: &'static str,
    value: i64,
    min: i64,
    max: i64,
) -> Result<u32, ProductError> {
    if (min..=max).contains(&value) {
        u32::try_from(value).map_err(|_| ProductError::invalid(field, "out of range"))
    } else {
        Err(ProductError::invalid(
            field,
            format!("must be {min}..={max}, got {value}"),
        ))
    }
}

/// Hangul fillers: letters by category, blank on screen.
const HANGUL_FILLERS: [char; 4] = ['\u{115F}', '\u{1160}', '\u{3164}', '\u{FFA0}'];

/// The subdivision flags emoji know (England, Scotland, Wales): a black flag, tag characters
/// spelling the region, a cancel tag. Tag characters anywhere else hide text.
const FLAG_TAGS: [&str; 3] = ["gbeng", "gbsct", "gbwls"];

/// Whether `c` shows nothing or changes how the text around it shows (controls, format
/// characters such as zero-width spaces and bidi overrides, line and paragraph separators,
/// private-use and unassigned code points, Hangul fillers). The zero-width joiner stays:
/// emoji sequences need it (flags are allowed by [`holds_invisible`]).
fn invisible(c: char) -> bool {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory as _};
    if c == '\u{200D}' {
        return false;
    }
    HANGUL_FILLERS.contains(&c)
        || matches!(
            c.general_category(),
            G::Control
                | G::Format
                | G::LineSeparator
                | G::ParagraphSeparator
                | G::PrivateUse
                | G::Surrogate
                | G::Unassigned
        )
}

/// Whether `text` holds an invisible character (see [`invisible`]), bar those `allowed` and
/// the tags of the subdivision flags ([`FLAG_TAGS`]).
fn holds_invisible(text: &str, allowed: impl Fn(char) -> bool) -> bool {
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        if c == '\u{1F3F4}' {
            // The tags of a known flag are skipped whole.
            if let Some(after) = FLAG_TAGS.iter().find_map(|region| flag_tags(rest, region)) {
                rest = after;
            }
            continue;
        }
        if invisible(c) && !allowed(c) {
            return true;
        }
    }
    false
}

/// What follows the tag characters spelling `region` and their cancel tag at the start of
/// `text`, if they are there.
fn flag_tags<'t>(text: &'t str, region: &str) -> Option<&'t str> {
    let mut rest = text;
    for letter in region.chars().chain(['\u{7F}']) {
        let tag = char::from_u32(0xE0000 + u32::from(letter))?;
        rest = rest.strip_prefix(tag)?;
    }
    Some(rest)
}

/// Trims a text and checks its length in characters, that it holds nothing invisible (see
/// [`invisible`]; a description may hold line breaks and tabs) and something visible.
pub(crate) fn text(
    field: &'static str,
    raw: &str,
    min: usize,
    max: usize,
) -> Result<String, ProductError> {
    let trimmed = raw.trim();
    let chars = trimmed.chars().count();
    if chars < min || chars > max {
        return Err(ProductError::invalid(
            field,
            format!("must be {min}..={max} characters, got {chars}"),
        ));
    }
    if holds_invisible(trimmed, |c| {
        field == "description" && matches!(c, '\n' | '\t')
    }) {
        return Err(ProductError::invalid(
            field,
            "must not contain control, format or invisible characters",
        ));
    }
    if min > 0 && trimmed.chars().all(|c| c == '\u{200D}') {
        return Err(ProductError::invalid(field, "must show something"));
    }
    Ok(trimmed.to_owned())
}

/// A restock's idempotency key, trimmed: 1 to 64 printable ASCII characters.
pub(crate) fn restock_key(key: &str) -> Result<String, ProductError> {
    let key = key.trim();
    if key.is_empty() || key.len() > 64 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ProductError::invalid(
            "idempotency_key",
            "must be 1 to 64 printable ASCII characters",
        ));
    }
    Ok(key.to_owned())
}

/// Checks an `http(s)` URL without whitespace.
pub(crate) fn image_url(raw: &str) -> Result<String, ProductError> {
    let url = raw.trim();
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    let host_ok = url.split("://").nth(1).is_some_and(|rest| !rest.is_empty());
    if !scheme_ok
        || !host_ok
        || url.len() > MAX_IMAGE_URL_LEN
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ProductError::invalid(
            "image_url",
            format!("must be an http(s) URL of at most {MAX_IMAGE_URL_LEN} bytes"),
        ));
    }
    Ok(url.to_owned())
}
