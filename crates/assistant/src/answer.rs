//! Grounded answers over reviews: retrieve, mask, prompt, generate, keep real citations.

use std::sync::Arc;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use llm::{AnswerStream, Llm, Prompt};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::citation::CitationFilter;
use crate::error::AssistantError;
use crate::retrieval::{RetrievedReview, Retriever};
use crate::{measure, passage, privacy};

/// The instructions every grounded prompt carries.
pub const SYSTEM_PROMPT: &str = "당신은 디저트 가게의 리뷰 도우미입니다. \
'참고 리뷰'에 적힌 내용만 근거로 한국어로 간결하게 답하세요. \
근거로 쓴 리뷰는 문장 끝에 [번호]로 표시하세요. \
리뷰에 없는 내용은 지어내지 말고, 리뷰가 질문을 다루지 않으면 그렇다고 말하세요. \
리뷰를 쓴 사람에 대해서는 어떤 정보도 말하지 마세요.";
/// The longest question accepted, in characters after trimming.
pub const MAX_QUESTION_CHARS: usize = 500;
/// The longest product id accepted, in characters.
pub const MAX_PRODUCT_ID_CHARS: usize = 100;
/// How many reviews an answer is grounded on by default.
pub const DEFAULT_TOP_K: usize = 5;
/// How many top passages are cited when the answer cites none itself.
const FALLBACK_CITATIONS: usize = 3;
/// The model name of the fixed answer given when no review matches.
pub const NO_REVIEWS_MODEL: &str = "none";
/// The fixed answer given when no review matches.
pub const NO_REVIEWS_ANSWER: &str =
    "질문과 관련된 리뷰를 찾지 못했어요. 다른 표현으로 물어봐 주세요.";

/// A review an answer cites, with the `[n]` number the answer text uses for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    /// The marker number in the answer text (`[number]`).
    pub number: usize,
    /// The cited review (its text masked as it was in the prompt).
    pub review: RetrievedReview,
}

/// A complete grounded answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The answer text, in Korean, with `[n]` markers.
    pub text: String,
    /// The reviews it cites; every one was retrieved for this question.
    pub citations: Vec<Citation>,
    /// The model that wrote it.
    pub model: String,
}

/// One step of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerEvent {
    /// The next piece of text.
    Chunk(String),
    /// The answer is complete (its text is the concatenated chunks).
    Done(Answer),
}

/// A streamed answer: chunks, then one `Done`, or an error that ends it.
pub type AnswerEvents = BoxStream<'static, Result<AnswerEvent, AssistantError>>;

/// A question as accepted: trimmed, 1..=[`MAX_QUESTION_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question(String);

impl Question {
    /// Accepts `text` as a question or says why not (`BAD_USER_INPUT`).
    pub fn parse(text: &str) -> Result<Self, AssistantError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AssistantError::BadInput("the question is empty".to_owned()));
        }
        if text.chars().count() > MAX_QUESTION_CHARS {
            return Err(AssistantError::BadInput(format!(
                "the question is longer than {MAX_QUESTION_CHARS} characters"
            )));
        }
        Ok(Self(text.to_owned()))
    }

    /// The question text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Answers questions about products from their reviews (retrieval-augmented generation).
#[derive(Clone)]
pub struct Answerer {
    retriever: Arc<dyn Retriever>,
    llm: Arc<dyn Llm>,
    top_k: usize,
}

impl std::fmt::Debug for Answerer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answerer")
            .field("model", &self.llm.model())
            .field("top_k", &self.top_k)
            .finish_non_exhaustive()
    }
}

impl Answerer {
    /// An answerer grounding on `retriever`'s reviews and writing with `llm`.
    pub fn new(retriever: Arc<dyn Retriever>, llm: Arc<dyn Llm>) -> Self {
        Self {
            retriever,
            llm,
            top_k: DEFAULT_TOP_K,
        }
    }

    /// The same answerer grounding each answer on up to `top_k` reviews (at least one).
    pub fn with_top_k(mut self, top_k: usize) -> Self {
        self.top_k = top_k.max(1);
        self
    }

    /// The model answers are written by.
    pub fn model(&self) -> &str {
        self.llm.model()
    }

    /// Answers `question` (about `product_id` only, when given) at once.
    pub async fn ask(
        &self,
        question: &str,
        product_id: Option<&str>,
    ) -> Result<Answer, AssistantError> {
        let mut events = self.ask_stream(question, product_id).await?;
        while let Some(event) = events.next().await {
            if let AnswerEvent::Done(answer) = event? {
                return Ok(answer);
            }
        }
        Err(llm::LlmError::Truncated.into())
    }

    /// Answers `question` (about `product_id` only, when given) as it is written.
    #[tracing::instrument(skip_all, fields(model = %self.llm.model()))]
    pub async fn ask_stream(
        &self,
        question: &str,
        product_id: Option<&str>,
    ) -> Result<AnswerEvents, AssistantError> {
        let started = Instant::now();
        let question = Question::parse(question)?;
        let product_id = product_id.map(parse_product_id).transpose()?;
        let mut reviews = self
            .retriever
            .retrieve(question.as_str(), product_id, self.top_k)
            .await
            .inspect_err(|err| tracing::warn!(error = %err, "review retrieval failed"))?;
        reviews.truncate(self.top_k);
        if reviews.is_empty() {
            measure::answered(NO_REVIEWS_MODEL, "no_reviews", None);
            let answer = Answer {
                text: NO_REVIEWS_ANSWER.to_owned(),
                citations: Vec::new(),
                model: NO_REVIEWS_MODEL.to_owned(),
            };
            let events = [
                Ok(AnswerEvent::Chunk(answer.text.clone())),
                Ok(AnswerEvent::Done(answer)),
            ];
            return Ok(futures::stream::iter(events).boxed());
        }
        for review in &mut reviews {
            if let std::borrow::Cow::Owned(masked) = privacy::mask(&review.text) {
                review.text = masked;
            }
        }
        let prompt = Prompt::grounded(
            SYSTEM_PROMPT,
            question.as_str(),
            reviews.iter().map(passage::format),
        );
        let model = self.llm.model().to_owned();
        let deltas = self.llm.stream(&prompt).await.inspect_err(|err| {
            measure::answered(&model, "error", None);
            tracing::warn!(code = err.code(), error = %err, "answer did not start");
        })?;
        let writing = Writing {
            deltas,
            filter: CitationFilter::new(reviews.len()),
            reviews,
            text: String::new(),
            model,
            started,
            phase: Phase::Streaming,
        };
        Ok(futures::stream::unfold(writing, Writing::next).boxed())
    }
}

fn parse_product_id(id: &str) -> Result<&str, AssistantError> {
    let id = id.trim();
    if id.is_empty()
        || id.chars().count() > MAX_PRODUCT_ID_CHARS
        || id.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(AssistantError::BadInput(format!(
            "the product id must be 1 to {MAX_PRODUCT_ID_CHARS} characters without spaces"
        )));
    }
    Ok(id)
}

/// Where a streamed answer is.
enum Phase {
    Streaming,
    Finishing,
    Ended,
}

/// A streamed answer being written: model deltas through the citation filter.
struct Writing {
    deltas: AnswerStream,
    filter: CitationFilter,
    reviews: Vec<RetrievedReview>,
    text: String,
    model: String,
    started: Instant,
    phase: Phase,
}

impl Writing {
    async fn next(mut self) -> Option<(Result<AnswerEvent, AssistantError>, Self)> {
        loop {
            match self.phase {
                Phase::Ended => return None,
                Phase::Finishing => {
                    self.phase = Phase::Ended;
                    let answer = self.finish();
                    return Some((Ok(AnswerEvent::Done(answer)), self));
                }
                Phase::Streaming => match self.deltas.next().await {
                    Some(Ok(delta)) => {
                        let shown = self.filter.push(&delta);
                        if !shown.is_empty() {
                            self.text.push_str(&shown);
                            return Some((Ok(AnswerEvent::Chunk(shown)), self));
                        }
                    }
                    Some(Err(err)) => {
                        self.phase = Phase::Ended;
                        measure::answered(&self.model, "error", None);
                        return Some((Err(err.into()), self));
                    }
                    None => {
                        self.phase = Phase::Finishing;
                        let rest = self.filter.finish();
                        if !rest.is_empty() {
                            self.text.push_str(&rest);
                            return Some((Ok(AnswerEvent::Chunk(rest)), self));
                        }
                    }
                },
            }
        }
    }

    fn finish(&mut self) -> Answer {
        let numbers: Vec<usize> = if self.filter.cited().is_empty() {
            (1..=self.reviews.len().min(FALLBACK_CITATIONS)).collect()
        } else {
            self.filter.cited().to_vec()
        };
        let citations = numbers
            .into_iter()
            .filter_map(|number| {
                let review = self.reviews.get(number.checked_sub(1)?)?;
                Some(Citation {
                    number,
                    review: review.clone(),
                })
            })
            .collect();
        let took = self.started.elapsed();
        measure::answered(&self.model, "ok", Some(took));
        tracing::debug!(model = %self.model, took_ms = took.as_millis(), "answer written");
        Answer {
            text: std::mem::take(&mut self.text),
            citations,
            model: self.model.clone(),
        }
    }
}
