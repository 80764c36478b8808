//! The texts a review is embedded as for search: the whole review and, when it has several
//! sentences, each sentence on its own, every one under its product name, so a question about
//! one thing a long review says matches that sentence undiluted (the search scores a review by
//! its best text).

use crate::sentence;

/// The most sentences of one review embedded on their own (the whole review covers the rest).
pub const MAX_SENTENCES: usize = 15;

/// The texts `text` (a review of `product_name`) is embedded as: the whole review first, then
/// each sentence when there are several; each is `"{product_name}\n{text}"`, or the bare text
/// when the product name is blank.
pub fn search_texts(product_name: &str, text: &str) -> Vec<String> {
    let whole = text.trim();
    let mut texts = vec![titled(product_name, whole)];
    let sentences = sentence::split(whole);
    if sentences.len() > 1 {
        texts.extend(
            sentences
                .into_iter()
                .filter(|s| *s != whole)
                .take(MAX_SENTENCES)
                .map(|s| titled(product_name, s)),
        );
    }
    texts
}

/// `text` under its product name: `"{product_name}\n{text}"`, or the bare text when the name
/// is blank.
pub fn titled(product_name: &str, text: &str) -> String {
    let name = product_name.trim();
    let text = text.trim();
    if name.is_empty() {
        text.to_owned()
    } else {
        format!("{name}\n{text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_review_then_each_sentence_under_the_product_name() {
        let texts = search_texts(
            "바스크 치즈케이크",
            "달지 않고 맛있어요. 배송은 늦었어요 ㅠㅠ",
        );
        // Sentences as `sentence::split` cuts them: a trailing `ㅠㅠ` alone is no sentence.
        assert_eq!(
            texts,
            [
                "바스크 치즈케이크\n달지 않고 맛있어요. 배송은 늦었어요 ㅠㅠ",
                "바스크 치즈케이크\n달지 않고 맛있어요.",
                "바스크 치즈케이크\n배송은 늦었어요",
            ]
        );
    }

    #[test]
    fn one_sentence_is_one_text_and_a_blank_name_adds_nothing() {
        assert_eq!(
            search_texts("마카롱", "꼬끄가 쫀득해요"),
            ["마카롱\n꼬끄가 쫀득해요"]
        );
        assert_eq!(search_texts("  ", " 맛있어요 "), ["맛있어요"]);
    }

    #[test]
    fn a_long_review_is_capped() {
        let text = "맛있어요. ".repeat(40);
        let texts = search_texts("쿠키", &text);
        assert_eq!(texts.len(), 1 + MAX_SENTENCES);
    }
}
