//! The local answerer: an [`Llm`] that answers from the prompt's passages alone, by
//! quoting the sentences most relevant to the question.

use std::collections::HashSet;
use std::fmt::Write as _;

use async_trait::async_trait;
use futures::StreamExt as _;
use llm::{AnswerStream, Llm, LlmError, Prompt};

use crate::passage::{self, Passage};
use crate::retrieval::Sentiment;
use crate::sentence::{self, Relevance};

/// The model name extractive answers are attributed to.
pub const EXTRACTIVE_MODEL: &str = "extractive-v1";
/// How many sentences an answer quotes at most.
const MAX_QUOTES: usize = 3;
/// The label [`llm::Prompt::grounded`] puts before the question.
const QUESTION_PREFIX: &str = "질문:";

/// Answers without a remote model: quotes the passages' sentences that best match the
/// question (character-bigram overlap), with `[n]` citations, label counts and the mean
/// rating, in Korean. Deterministic; streams its answer word by word.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractiveLlm;

impl ExtractiveLlm {
    /// The local answerer.
    pub fn new() -> Self {
        Self
    }

    /// The whole answer to `prompt`.
    pub fn answer(&self, prompt: &Prompt) -> String {
        let question = prompt
            .user
            .lines()
            .find_map(|line| line.trim_start().strip_prefix(QUESTION_PREFIX))
            .unwrap_or_default()
            .trim();
        let passages: Vec<(usize, Passage<'_>)> = prompt
            .context()
            .map(|line| (line.number, passage::parse(line.text)))
            .collect();
        if passages.is_empty() {
            return "참고할 리뷰가 없어 리뷰를 근거로 답변드리기 어려워요.".to_owned();
        }
        let mut answer = String::new();
        let quotes = best_sentences(question, &passages);
        if quotes.is_empty() {
            let _ = writeln!(
                answer,
                "참고한 리뷰 {}건에는 질문에 직접 답하는 내용이 없어요.",
                passages.len()
            );
        } else {
            let _ = writeln!(
                answer,
                "리뷰 {}건 중 질문과 가장 관련 있는 내용이에요.",
                passages.len()
            );
            for (number, sentence) in &quotes {
                let _ = writeln!(answer, "- \"{sentence}\" [{number}]");
            }
        }
        if let Some(summary) = label_summary(&passages) {
            let _ = writeln!(answer, "{summary}");
        }
        if let Some(summary) = rating_summary(&passages) {
            let _ = writeln!(answer, "{summary}");
        }
        answer.truncate(answer.trim_end().len());
        answer
    }
}

#[async_trait]
impl Llm for ExtractiveLlm {
    fn model(&self) -> &str {
        EXTRACTIVE_MODEL
    }

    async fn stream(&self, prompt: &Prompt) -> Result<AnswerStream, LlmError> {
        let answer = self.answer(prompt);
        let words: Vec<Result<String, LlmError>> = answer
            .split_inclusive([' ', '\n'])
            .map(|word| Ok(word.to_owned()))
            .collect();
        Ok(futures::stream::iter(words).boxed())
    }
}

/// Up to [`MAX_QUOTES`] `(passage number, sentence)` pairs, best first: each passage's best
/// sentence with a positive score; ties go to the earlier (better retrieved) passage.
fn best_sentences<'a>(question: &str, passages: &[(usize, Passage<'a>)]) -> Vec<(usize, &'a str)> {
    let sentences: Vec<(usize, usize, &'a str, HashSet<_>)> = passages
        .iter()
        .enumerate()
        .flat_map(|(rank, (number, passage))| {
            sentence::split(passage.text)
                .into_iter()
                .map(move |sentence| (rank, *number, sentence, sentence::grams(sentence)))
        })
        .collect();
    let relevance = Relevance::new(question, sentences.iter().map(|(.., grams)| grams));
    let mut best: Vec<(f32, usize, usize, &'a str)> = Vec::new();
    for (rank, number, sentence, grams) in &sentences {
        let score = relevance.score(grams);
        if score <= 0.0 {
            continue;
        }
        match best.iter_mut().find(|(_, _, n, _)| n == number) {
            Some(slot) if slot.0 < score => *slot = (score, *rank, *number, sentence),
            Some(_) => {}
            None => best.push((score, *rank, *number, sentence)),
        }
    }
    best.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    best.into_iter()
        .take(MAX_QUOTES)
        .map(|(_, _, number, sentence)| (number, sentence))
        .collect()
}

/// `리뷰 라벨: 단맛 긍정 2건·부정 1건, 가격 부정 1건.` over the labeled passages.
fn label_summary(passages: &[(usize, Passage<'_>)]) -> Option<String> {
    let mut counts: Vec<(&str, [usize; 3])> = Vec::new();
    for (_, passage) in passages {
        for (aspect, sentiment) in &passage.labels {
            let slot = match counts.iter().position(|(name, _)| name == aspect) {
                Some(index) => index,
                None => {
                    counts.push((aspect, [0; 3]));
                    counts.len() - 1
                }
            };
            let column = Sentiment::ALL
                .iter()
                .position(|s| s == sentiment)
                .unwrap_or(0);
            counts[slot].1[column] += 1;
        }
    }
    if counts.is_empty() {
        return None;
    }
    let mut summary = String::from("리뷰 라벨 집계: ");
    for (index, (aspect, columns)) in counts.iter().enumerate() {
        if index > 0 {
            summary.push_str(", ");
        }
        summary.push_str(aspect);
        let mut first = true;
        for (sentiment, count) in Sentiment::ALL.iter().zip(columns) {
            if *count > 0 {
                summary.push(if first { ' ' } else { '·' });
                let _ = write!(summary, "{} {count}건", sentiment.korean());
                first = false;
            }
        }
    }
    summary.push('.');
    Some(summary)
}

/// `평균 별점 4.3점 (리뷰 3건).` over the passages with a rating.
fn rating_summary(passages: &[(usize, Passage<'_>)]) -> Option<String> {
    let ratings: Vec<u8> = passages.iter().filter_map(|(_, p)| p.rating).collect();
    if ratings.is_empty() {
        return None;
    }
    let mean = ratings.iter().map(|r| f32::from(*r)).sum::<f32>() / ratings.len() as f32;
    Some(format!("평균 별점 {mean:.1}점 (리뷰 {}건).", ratings.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieval::{Labels, RetrievedReview};

    fn review(id: &str, rating: u8, text: &str, labels: &[(&str, Sentiment)]) -> RetrievedReview {
        RetrievedReview {
            id: id.into(),
            product_id: "p".into(),
            product_name: "케이크".into(),
            rating,
            text: text.into(),
            labels: (!labels.is_empty()).then(|| {
                labels
                    .iter()
                    .map(|(a, s)| ((*a).to_owned(), *s))
                    .collect::<Labels>()
            }),
            score: 1.0,
        }
    }

    fn prompt(question: &str, reviews: &[RetrievedReview]) -> Prompt {
        Prompt::grounded("system", question, reviews.iter().map(passage::format))
    }

    #[test]
    fn quotes_the_most_relevant_sentence_with_its_number() {
        let reviews = [
            review("a", 5, "포장이 예뻐요. 선물용으로 좋아요.", &[]),
            review(
                "b",
                4,
                "배송이 빨랐어요. 생크림이 덜 달아서 부담 없어요.",
                &[("SWEETNESS", Sentiment::Positive)],
            ),
            review(
                "c",
                2,
                "초코가 너무 달아요.",
                &[("SWEETNESS", Sentiment::Negative)],
            ),
        ];
        let answer = ExtractiveLlm.answer(&prompt("생크림이 덜 단 케이크 있나요?", &reviews));
        let first_quote = answer.lines().nth(1).unwrap_or_default();
        assert_eq!(
            first_quote, "- \"생크림이 덜 달아서 부담 없어요.\" [2]",
            "{answer}"
        );
        assert!(!answer.contains("포장이 예뻐요"), "{answer}");
        assert!(
            answer.contains("리뷰 라벨 집계: 단맛 긍정 1건·부정 1건."),
            "{answer}"
        );
        assert!(answer.contains("평균 별점 3.7점 (리뷰 3건)."), "{answer}");
    }

    #[test]
    fn says_when_reviews_do_not_cover_the_question() {
        let reviews = [review("a", 5, "포장이 예뻐요.", &[])];
        let answer = ExtractiveLlm.answer(&prompt("주차 가능한가요?", &reviews));
        assert!(answer.starts_with("참고한 리뷰 1건에는 질문에 직접 답하는 내용이 없어요."));
        assert!(!answer.contains('['), "{answer}");
        let empty = ExtractiveLlm.answer(&Prompt::grounded("s", "아무거나", Vec::<String>::new()));
        assert!(empty.starts_with("참고할 리뷰가 없어"));
    }

    #[test]
    fn is_deterministic_and_streams_words() {
        let reviews = [review("a", 5, "딸기가 신선해요. 생크림도 좋아요.", &[])];
        let prompt = prompt("딸기 신선한가요?", &reviews);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let chunks: Vec<String> = runtime.block_on(async {
            let stream = ExtractiveLlm.stream(&prompt).await.unwrap();
            stream.map(|chunk| chunk.unwrap()).collect().await
        });
        assert!(chunks.len() > 5, "{chunks:?}");
        assert_eq!(chunks.concat(), ExtractiveLlm.answer(&prompt));
        assert_eq!(ExtractiveLlm.answer(&prompt), ExtractiveLlm.answer(&prompt));
    }
}
