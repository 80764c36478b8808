//! What goes into a model and what comes out.

use std::fmt::Write as _;

/// A prompt already grounded by the caller: instructions plus the user message, whose
/// context passages are numbered lines `[n] text` (see [`Prompt::grounded`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// The system instructions.
    pub system: String,
    /// The user message: the question and its numbered context passages.
    pub user: String,
}

/// A finished answer and the model that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The answer text.
    pub text: String,
    /// The model name.
    pub model: String,
}

/// One numbered context passage of a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextLine<'a> {
    /// Its citation number `n` (as in `[n]`).
    pub number: usize,
    /// The passage text.
    pub text: &'a str,
}

impl Prompt {
    /// A prompt asking `question` about `passages`, numbered from 1 as `[n] text` lines
    /// (line breaks inside a passage become spaces, so each passage stays one line).
    pub fn grounded<I>(system: impl Into<String>, question: &str, passages: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut user = format!("질문: {}\n\n참고 리뷰:\n", one_line(question));
        for (index, passage) in passages.into_iter().enumerate() {
            // Writing into a String cannot fail.
            let _ = writeln!(user, "[{}] {}", index + 1, one_line(passage.as_ref()));
        }
        Self {
            system: system.into(),
            user,
        }
    }

    /// The numbered context passages of the user message, in order.
    pub fn context(&self) -> impl Iterator<Item = ContextLine<'_>> {
        self.user.lines().filter_map(parse_context_line)
    }
}

fn parse_context_line(line: &str) -> Option<ContextLine<'_>> {
    let rest = line.trim_start().strip_prefix('[')?;
    let (number, text) = rest.split_once(']')?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(ContextLine {
        number: number.parse().ok()?,
        text: text.trim(),
    })
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grounded_prompt_numbers_passages_one_per_line() {
        let prompt = Prompt::grounded(
            "리뷰만 근거로 답하세요.",
            "덜 단 케이크는?",
            ["생크림이 가볍고\n덜 달아요", "너무 달아요"],
        );
        let lines: Vec<_> = prompt.context().collect();
        assert_eq!(
            lines,
            vec![
                ContextLine {
                    number: 1,
                    text: "생크림이 가볍고 덜 달아요"
                },
                ContextLine {
                    number: 2,
                    text: "너무 달아요"
                },
            ]
        );
        assert!(prompt.user.starts_with("질문: 덜 단 케이크는?"));
    }

    #[test]
    fn ignores_lines_that_only_look_numbered() {
        let prompt = Prompt {
            system: String::new(),
            user: "[a] no\n[] empty\n[99999999999999999999999] huge\n  [3] yes ".to_owned(),
        };
        let lines: Vec<_> = prompt.context().collect();
        assert_eq!(
            lines,
            vec![ContextLine {
                number: 3,
                text: "yes"
            }]
        );
    }
}
