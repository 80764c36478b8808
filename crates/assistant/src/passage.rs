//! How a retrieved review travels in a prompt: one `[n]` line with fields a local answerer
//! can parse back.
//!
//! Format (after the `[n] ` that [`llm::Prompt::grounded`] adds):
//! `{product name} | 별점 {rating}/5 | {text}` and, when labeled, ` | 라벨: {aspect} {sentiment}, ...`
//! with Korean aspect and sentiment words (`단맛 긍정, 가격 부정`). Review texts and product
//! names have `|` and line breaks replaced, so a review cannot forge fields or passages.

use std::fmt::Write as _;

use crate::retrieval::{RetrievedReview, Sentiment};

/// Separates the fields of a passage.
const SEPARATOR: &str = " | ";
/// Starts the labels field.
const LABELS_PREFIX: &str = "라벨: ";
/// Starts the rating field.
const RATING_PREFIX: &str = "별점 ";
/// The longest review text put into a prompt, in characters.
pub const MAX_TEXT_CHARS: usize = 600;

/// A passage parsed back from a prompt line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage<'a> {
    /// The product name, when the line is in passage format.
    pub product_name: Option<&'a str>,
    /// The rating, when the line is in passage format.
    pub rating: Option<u8>,
    /// The review text.
    pub text: &'a str,
    /// The labels: Korean aspect word and sentiment, in order.
    pub labels: Vec<(&'a str, Sentiment)>,
}

/// The passage line (without its `[n] `) for `review`, whose text is already masked.
pub fn format(review: &RetrievedReview) -> String {
    let mut line = String::with_capacity(review.text.len() + 64);
    line.push_str(&clean(&review.product_name, usize::MAX));
    let _ = write!(
        line,
        "{SEPARATOR}{RATING_PREFIX}{}/5{SEPARATOR}",
        review.rating.min(5)
    );
    line.push_str(&clean(&review.text, MAX_TEXT_CHARS));
    if let Some(labels) = review.labels.as_ref().filter(|labels| !labels.is_empty()) {
        line.push_str(SEPARATOR);
        line.push_str(LABELS_PREFIX);
        for (index, (aspect, sentiment)) in labels.iter().enumerate() {
            if index > 0 {
                line.push_str(", ");
            }
            let _ = write!(
                line,
                "{} {}",
                clean(aspect_korean(aspect), 40),
                sentiment.korean()
            );
        }
    }
    line
}

/// Parses a passage line; a line not in passage format is all text.
pub fn parse(line: &str) -> Passage<'_> {
    let mut fields = line.splitn(4, SEPARATOR);
    let (Some(product_name), Some(rating), Some(text)) =
        (fields.next(), fields.next(), fields.next())
    else {
        return Passage::plain(line);
    };
    let Some(rating) = rating
        .strip_prefix(RATING_PREFIX)
        .and_then(|r| r.strip_suffix("/5"))
        .and_then(|r| r.parse::<u8>().ok())
    else {
        return Passage::plain(line);
    };
    let labels = fields
        .next()
        .and_then(|field| field.strip_prefix(LABELS_PREFIX))
        .map(|field| {
            field
                .split(", ")
                .filter_map(|label| {
                    let (aspect, sentiment) = label.rsplit_once(' ')?;
                    Some((aspect, Sentiment::from_korean(sentiment)?))
                })
                .collect()
        })
        .unwrap_or_default();
    Passage {
        product_name: Some(product_name),
        rating: Some(rating),
        text,
        labels,
    }
}

impl<'a> Passage<'a> {
    fn plain(text: &'a str) -> Self {
        Self {
            product_name: None,
            rating: None,
            text,
            labels: Vec::new(),
        }
    }
}

/// The Korean word for a labeller's aspect name; unknown names stay as they are.
pub fn aspect_korean(aspect: &str) -> &str {
    match aspect {
        "TASTE" => "맛",
        "SWEETNESS" => "단맛",
        "TEXTURE" => "식감",
        "FRESHNESS" => "신선도",
        "PRICE" => "가격",
        "PACKAGING" => "포장",
        "DELIVERY" => "배송",
        "SERVICE" => "서비스",
        other => other,
    }
}

/// One line of at most `max_chars` characters (then `…`), whitespace collapsed, without
/// the field separator.
fn clean(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_mul(4)));
    let mut count = 0;
    for word in text.split_whitespace() {
        let space = (!out.is_empty()).then_some(' ');
        for c in space.into_iter().chain(word.chars()) {
            if count == max_chars {
                out.push('…');
                return out;
            }
            out.push(if c == '|' { '/' } else { c });
            count += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieval::Labels;

    fn review(text: &str, labels: Option<Labels>) -> RetrievedReview {
        RetrievedReview {
            id: "r1".into(),
            product_id: "p1".into(),
            product_name: "딸기 | 생크림 케이크".into(),
            rating: 4,
            text: text.into(),
            labels,
            score: 1.0,
        }
    }

    #[test]
    fn formats_and_parses_back() {
        let labels = Labels::from([
            ("SWEETNESS".to_owned(), Sentiment::Positive),
            ("PRICE".to_owned(), Sentiment::Negative),
        ]);
        let line = format(&review("덜 달아요.\n가격은 | 비싸요", Some(labels)));
        assert_eq!(
            line,
            "딸기 / 생크림 케이크 | 별점 4/5 | 덜 달아요. 가격은 / 비싸요 | 라벨: 가격 부정, 단맛 긍정"
        );
        let passage = parse(&line);
        assert_eq!(passage.product_name, Some("딸기 / 생크림 케이크"));
        assert_eq!(passage.rating, Some(4));
        assert_eq!(passage.text, "덜 달아요. 가격은 / 비싸요");
        assert_eq!(
            passage.labels,
            vec![("가격", Sentiment::Negative), ("단맛", Sentiment::Positive)]
        );
    }

    #[test]
    fn unlabeled_and_foreign_lines() {
        let line = format(&review("맛있어요", None));
        let passage = parse(&line);
        assert_eq!(passage.text, "맛있어요");
        assert!(passage.labels.is_empty());
        let plain = parse("그냥 한 줄");
        assert_eq!(plain.text, "그냥 한 줄");
        assert_eq!(plain.rating, None);
    }

    #[test]
    fn long_texts_are_cut() {
        let long = "가".repeat(MAX_TEXT_CHARS * 2);
        let passage_line = format(&review(&long, None));
        let text = parse(&passage_line).text;
        assert_eq!(text.chars().count(), MAX_TEXT_CHARS + 1);
        assert!(text.ends_with('…'));
    }
}
