//! Korean sentences and how well one matches a question (character bigrams).

use std::collections::{HashMap, HashSet};

/// Characters that end a sentence.
const TERMINALS: &[char] = &['.', '!', '?', '…', '。', '！', '？', '\n'];
/// Characters that may trail a terminal and still belong to its sentence.
const CLOSERS: &[char] = &['"', '\'', '”', '’', ')', '~', '^', 'ㅎ', 'ㅋ', 'ㅠ', 'ㅜ'];

/// Grammatical question and sentence endings: bigrams that say nothing about the topic.
const ENDING_GRAMS: &[&str] = &[
    "예요", "에요", "어요", "아요", "나요", "까요", "세요", "해요", "가요", "지요", "니다", "습니",
    "는지", "은지", "인지", "을까", "할까", "려줘", "려주", "알려", "주세", "어떤", "떤가", "어때",
    "때요", "뭐가", "뭐예", "무엇", "있나", "인가", "은가", "는가", "나는", "하나",
];

/// A bigram (or a one-character word as `(c, ' ')`).
type Gram = (char, char);

/// The sentences of `text`, trimmed, in order: split after `. ! ? …` and line breaks (not
/// inside a number like `4.5`), and after a `요` or `다` ending followed by a space.
pub fn split(text: &str) -> Vec<&str> {
    let mut sentences = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((index, c)) = chars.next() {
        let next = chars.peek().map(|&(_, next)| next);
        let ends = if TERMINALS.contains(&c) {
            let decimal = c == '.'
                && text[..index]
                    .chars()
                    .next_back()
                    .is_some_and(|p| p.is_ascii_digit())
                && next.is_some_and(|n| n.is_ascii_digit());
            !decimal
        } else {
            (c == '요' || c == '다') && next.is_some_and(char::is_whitespace)
        };
        if !ends {
            continue;
        }
        let mut end = index + c.len_utf8();
        while let Some(&(at, more)) = chars.peek() {
            if TERMINALS.contains(&more) && more != '\n' || CLOSERS.contains(&more) {
                end = at + more.len_utf8();
                chars.next();
            } else {
                break;
            }
        }
        push_trimmed(&mut sentences, &text[start..end]);
        start = end;
    }
    push_trimmed(&mut sentences, &text[start..]);
    sentences
}

fn push_trimmed<'a>(sentences: &mut Vec<&'a str>, sentence: &'a str) {
    let sentence = sentence.trim();
    // Laughter and crying alone (`ㅎㅎ`, `ㅠㅠ`, Hangul compatibility jamo) say nothing.
    let jamo = |c: char| ('\u{3131}'..='\u{318E}').contains(&c);
    if sentence.chars().any(|c| c.is_alphanumeric() && !jamo(c)) {
        sentences.push(sentence);
    }
}

/// The topic bigrams of `text`: character pairs inside each word (letters and digits
/// only, ASCII lowercased), one-letter words as themselves, grammatical endings left out.
pub fn grams(text: &str) -> HashSet<Gram> {
    let mut grams = HashSet::new();
    for word in text.split_whitespace() {
        let letters: Vec<char> = word
            .chars()
            .filter(|c| c.is_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match letters.as_slice() {
            [] => {}
            [single] => {
                grams.insert((*single, ' '));
            }
            _ => {
                for pair in letters.windows(2) {
                    let gram = (pair[0], pair[1]);
                    if !is_ending(gram) {
                        grams.insert(gram);
                    }
                }
            }
        }
    }
    grams
}

fn is_ending((a, b): Gram) -> bool {
    ENDING_GRAMS.iter().any(|ending| {
        let mut chars = ending.chars();
        chars.next() == Some(a) && chars.next() == Some(b)
    })
}

/// Scores sentences against a question: the summed rarity (inverse document frequency
/// among the candidates) of the question bigrams a sentence shares, damped by its length.
#[derive(Debug)]
pub struct Relevance {
    question: HashSet<Gram>,
    weights: HashMap<Gram, f32>,
}

impl Relevance {
    /// A scorer for `question` over the `candidates` it will rank.
    pub fn new<'a>(
        question: &str,
        candidates: impl IntoIterator<Item = &'a HashSet<Gram>>,
    ) -> Self {
        let question = grams(question);
        let mut frequency: HashMap<Gram, usize> = HashMap::new();
        let mut total = 0usize;
        for candidate in candidates {
            total += 1;
            for gram in candidate.intersection(&question) {
                *frequency.entry(*gram).or_default() += 1;
            }
        }
        let weights = frequency
            .into_iter()
            .map(|(gram, count)| {
                let idf = ((total as f32 + 1.0) / (count as f32 + 0.5)).ln();
                (gram, idf.max(0.05))
            })
            .collect();
        Self { question, weights }
    }

    /// How well a sentence with bigrams `sentence` matches the question (0 when it shares
    /// none).
    pub fn score(&self, sentence: &HashSet<Gram>) -> f32 {
        let shared: f32 = sentence
            .intersection(&self.question)
            .map(|gram| self.weights.get(gram).copied().unwrap_or(0.0))
            .sum();
        if shared == 0.0 {
            0.0
        } else {
            shared / (sentence.len().max(1) as f32).sqrt()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_punctuation_endings_and_lines() {
        assert_eq!(
            split("정말 맛있어요 또 살게요! 가격은 4.5만원... 비싸다 그래도\n좋아요 ㅎㅎ"),
            vec![
                "정말 맛있어요",
                "또 살게요!",
                "가격은 4.5만원...",
                "비싸다",
                "그래도",
                "좋아요"
            ]
        );
        assert_eq!(split("  "), Vec::<&str>::new());
        assert_eq!(split("끝."), vec!["끝."]);
    }

    #[test]
    fn shared_rare_bigrams_score_higher() {
        let sentences = [
            "생크림이 덜 달아서 좋아요",
            "초코가 진하고 달아요",
            "포장이 예뻐요",
        ];
        let grams: Vec<_> = sentences.iter().map(|s| grams(s)).collect();
        let relevance = Relevance::new("생크림 덜 단 케이크가 뭐예요?", &grams);
        let scores: Vec<f32> = grams.iter().map(|g| relevance.score(g)).collect();
        assert!(scores[0] > scores[1], "{scores:?}");
        assert_eq!(scores[2], 0.0, "{scores:?}");
    }

    #[test]
    fn question_endings_do_not_count() {
        assert!(grams("뭐예요?").is_empty());
        assert!(grams("어때요").is_empty());
    }
}
