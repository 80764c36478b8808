//! Citation markers (`[n]`) in generated text: kept when they name a passage of the
//! prompt, dropped when the model invented them, even when a marker is split across
//! streamed chunks.

/// How long an unclosed `[..` may be held back waiting for its `]`.
const MAX_MARKER_LEN: usize = 24;

/// Filters streamed answer text, keeping only citation markers `1..=passages`.
#[derive(Debug, Clone)]
pub struct CitationFilter {
    passages: usize,
    held: String,
    cited: Vec<usize>,
}

impl CitationFilter {
    /// A filter for an answer grounded on `passages` numbered passages.
    pub fn new(passages: usize) -> Self {
        Self {
            passages,
            held: String::new(),
            cited: Vec::new(),
        }
    }

    /// The text of `delta` that can be shown now (a possibly unfinished marker at its end
    /// is held back until the next delta or [`CitationFilter::finish`]).
    pub fn push(&mut self, delta: &str) -> String {
        if self.held.is_empty() {
            self.scan(delta, false)
        } else {
            let mut input = std::mem::take(&mut self.held);
            input.push_str(delta);
            self.scan(&input, false)
        }
    }

    /// Whatever was held back, once the answer is complete.
    pub fn finish(&mut self) -> String {
        let held = std::mem::take(&mut self.held);
        self.scan(&held, true)
    }

    /// The passage numbers cited so far, in order of first citation, each once.
    pub fn cited(&self) -> &[usize] {
        &self.cited
    }

    fn scan(&mut self, text: &str, at_end: bool) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find('[') {
            out.push_str(&rest[..open]);
            let inner = &rest[open + 1..];
            match marker(inner) {
                Marker::Numbers { numbers, len } => {
                    for number in numbers {
                        if (1..=self.passages).contains(&number) {
                            out.push('[');
                            out.push_str(&number.to_string());
                            out.push(']');
                            if !self.cited.contains(&number) {
                                self.cited.push(number);
                            }
                        }
                    }
                    rest = &inner[len..];
                }
                Marker::Unfinished if !at_end => {
                    self.held.push_str(&rest[open..]);
                    return out;
                }
                Marker::Unfinished | Marker::Text => {
                    out.push('[');
                    rest = inner;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// What follows a `[`.
enum Marker {
    /// `n]` or `n, m]`: the numbers and the length up to and including `]`.
    Numbers { numbers: Vec<usize>, len: usize },
    /// Could still become a marker.
    Unfinished,
    /// Ordinary text.
    Text,
}

fn marker(inner: &str) -> Marker {
    let Some(close) = inner.find(|c: char| !(c.is_ascii_digit() || c == ',' || c == ' ')) else {
        return if inner.len() < MAX_MARKER_LEN {
            Marker::Unfinished
        } else {
            Marker::Text
        };
    };
    if !inner[close..].starts_with(']') || close > MAX_MARKER_LEN {
        return Marker::Text;
    }
    let numbers: Option<Vec<usize>> = inner[..close]
        .split(',')
        .map(|part| {
            let part = part.trim();
            let digits = !part.is_empty() && part.len() <= 4;
            digits.then(|| part.parse().ok()).flatten()
        })
        .collect();
    match numbers {
        Some(numbers) => Marker::Numbers {
            numbers,
            len: close + 1,
        },
        None => Marker::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter_all(passages: usize, deltas: &[&str]) -> (String, Vec<usize>) {
        let mut filter = CitationFilter::new(passages);
        let mut text: String = deltas.iter().map(|delta| filter.push(delta)).collect();
        text.push_str(&filter.finish());
        (text, filter.cited().to_vec())
    }

    #[test]
    fn keeps_known_markers_and_drops_invented_ones() {
        let (text, cited) = filter_all(3, &["덜 달아요 [2]. 가격은 비싸요 [9][1], 또 [2]"]);
        assert_eq!(text, "덜 달아요 [2]. 가격은 비싸요 [1], 또 [2]");
        assert_eq!(cited, vec![2, 1]);
    }

    #[test]
    fn markers_split_across_deltas() {
        let (text, cited) = filter_all(3, &["맛있어요 [", "1", "] 그리고 [", "9", "]", " 끝 [3"]);
        assert_eq!(text, "맛있어요 [1] 그리고  끝 [3");
        assert_eq!(cited, vec![1]);
    }

    #[test]
    fn lists_and_plain_brackets() {
        let (text, cited) = filter_all(2, &["[1, 2, 7] [주의] [] [0] a[b"]);
        assert_eq!(text, "[1][2] [주의] [] [0] a[b".replace("[0]", ""));
        assert_eq!(cited, vec![1, 2]);
    }
}
