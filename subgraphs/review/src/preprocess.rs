//! Review text preprocessing, pure and shared by `writeReview` and the batch import: Unicode
//! NFC, HTML tags and entities removed, control and invisible formatting characters dropped,
//! whitespace collapsed, length bounds, and a content hash for dropping duplicates.
//!
//! The tag stripper is small on purpose: reviews are short plain text that sometimes carries
//! markup pasted from a web form (`<br>`, `<b>`, `&amp;`), and what is needed is the text, not
//! a sanitised HTML document. A full HTML5 parser (html5ever, through ammonia) would pull in a
//! large tree of crates to answer a simpler question. A `<` that does not open a tag (`<3`,
//! `a < b`, an unterminated `<b`) stays text; entities are decoded by `html-escape`.

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization as _;

/// Fewest characters a review text has after cleaning.
pub const MIN_TEXT_CHARS: usize = 1;
/// Most characters a review text has after cleaning.
pub const MAX_TEXT_CHARS: usize = 2_000;

/// Allowed length of a cleaned text, in characters (Unicode scalar values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextBounds {
    /// Fewest characters.
    pub min_chars: usize,
    /// Most characters.
    pub max_chars: usize,
}

impl Default for TextBounds {
    fn default() -> Self {
        Self {
            min_chars: MIN_TEXT_CHARS,
            max_chars: MAX_TEXT_CHARS,
        }
    }
}

/// Why a text was refused after cleaning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Nothing is left once markup, control characters and whitespace are removed.
    #[error("text is empty after removing markup and whitespace")]
    Empty,
    /// Too short or too long.
    #[error("text has {chars} characters after cleaning; {min}..={max} are allowed")]
    Length {
        /// Characters after cleaning.
        chars: usize,
        /// Fewest allowed.
        min: usize,
        /// Most allowed.
        max: usize,
    },
}

/// Cleans `raw` and checks it against `bounds`.
pub fn clean_checked(raw: &str, bounds: TextBounds) -> Result<String, TextError> {
    let text = clean(raw);
    let chars = text.chars().count();
    if chars == 0 {
        return Err(TextError::Empty);
    }
    if chars < bounds.min_chars || chars > bounds.max_chars {
        return Err(TextError::Length {
            chars,
            min: bounds.min_chars,
            max: bounds.max_chars,
        });
    }
    Ok(text)
}

/// The plain text of `raw`: tags removed, entities decoded, NFC, no control or invisible
/// formatting characters, whitespace runs collapsed to one space, trimmed.
pub fn clean(raw: &str) -> String {
    let stripped = strip_tags(raw);
    let decoded = html_escape::decode_html_entities(&stripped);
    let mut out = String::with_capacity(decoded.len());
    let mut pending_space = false;
    for c in decoded.nfc() {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if c.is_control() || is_invisible_format(c) {
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
    }
    out
}

/// Formatting characters that change nothing a reader sees, or reorder text to mislead
/// (bidirectional overrides). Joiners (U+200C, U+200D) stay: emoji sequences need them.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{200B}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// Elements whose boundaries separate words (replaced by a space, not by nothing).
const BLOCK_ELEMENTS: &[&str] = &[
    "br",
    "p",
    "div",
    "li",
    "ul",
    "ol",
    "tr",
    "td",
    "th",
    "table",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "blockquote",
    "pre",
    "section",
    "article",
    "header",
    "footer",
    "dd",
    "dt",
];

/// Elements whose content is not text (dropped with the tags).
const RAW_TEXT_ELEMENTS: &[&str] = &["script", "style"];

/// What a markup construct at a `<` is.
enum Markup {
    /// A tag, comment or declaration of `len` bytes that separates words or not.
    Tag { len: usize, separates: bool },
    /// An opening `script` or `style` tag of `len` bytes: its content is dropped too.
    RawText { len: usize, name: &'static str },
}

/// Removes tags, comments and declarations, keeping the text between them.
fn strip_tags(input: &str) -> String {
    if !input.contains('<') {
        return input.to_owned();
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let at = &rest[lt..];
        match markup_at(at) {
            Some(Markup::Tag { len, separates }) => {
                if separates {
                    out.push(' ');
                }
                rest = &at[len..];
            }
            Some(Markup::RawText { len, name }) => {
                out.push(' ');
                rest = skip_raw_text(&at[len..], name);
            }
            None => {
                out.push('<');
                rest = &at[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The markup starting at `s` (which starts with `<`), or `None` when the `<` is just text.
fn markup_at(s: &str) -> Option<Markup> {
    if let Some(body) = s.strip_prefix("<!--") {
        let end = body.find("-->")?;
        return Some(Markup::Tag {
            len: 4 + end + 3,
            separates: false,
        });
    }
    let bytes = s.as_bytes();
    let (closing, name_start) = match bytes.get(1) {
        Some(b'/') => (true, 2),
        Some(b'!' | b'?') => {
            let len = tag_end(s, 2)?;
            return Some(Markup::Tag {
                len,
                separates: false,
            });
        }
        Some(_) => (false, 1),
        None => return None,
    };
    if !bytes.get(name_start)?.is_ascii_alphabetic() {
        return None;
    }
    let name_len = bytes[name_start..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    let name = s[name_start..name_start + name_len].to_ascii_lowercase();
    let len = tag_end(s, name_start + name_len)?;
    let self_closing = s[..len].ends_with("/>");
    if !closing
        && !self_closing
        && let Some(raw) = RAW_TEXT_ELEMENTS.iter().find(|e| **e == name)
    {
        return Some(Markup::RawText { len, name: raw });
    }
    Some(Markup::Tag {
        len,
        separates: BLOCK_ELEMENTS.contains(&name.as_str()),
    })
}

/// The length of the tag in `s` up to and including its `>`, scanning from byte `from` and
/// skipping quoted attribute values; `None` when it never closes.
fn tag_end(s: &str, from: usize) -> Option<usize> {
    let mut quote: Option<u8> = None;
    for (i, b) in s.as_bytes().iter().enumerate().skip(from) {
        match (quote, *b) {
            (Some(q), b) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(*b),
            (None, b'>') => return Some(i + 1),
            (None, b'<') => return None,
            (None, _) => {}
        }
    }
    None
}

/// What follows the content of a `script`/`style` element (after its closing tag); nothing
/// when it is never closed.
fn skip_raw_text<'a>(s: &'a str, name: &str) -> &'a str {
    let closing = format!("</{name}");
    let lower = s.to_ascii_lowercase();
    let Some(start) = lower.find(&closing) else {
        return "";
    };
    match tag_end(s, start + closing.len()) {
        Some(end) => &s[end..],
        None => "",
    }
}

/// SHA-256 of what makes two reviews the same: product, author and cleaned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    /// The hash of a cleaned `text` about `product_id` by `author` (anonymous when `None`).
    pub fn of(product_id: &str, author: Option<&str>, text: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(product_id.as_bytes());
        hasher.update([0]);
        hasher.update(author.unwrap_or("").as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        Self(hasher.finalize().into())
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Remembers content hashes and the line each was first seen on.
#[derive(Debug, Default, Clone)]
pub struct Deduplicator {
    seen: HashMap<ContentHash, u64>,
}

impl Deduplicator {
    /// Records `hash` from `line`; returns the earlier line when it was seen before.
    pub fn first_seen(&mut self, hash: ContentHash, line: u64) -> Option<u64> {
        match self.seen.entry(hash) {
            std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(line);
                None
            }
        }
    }

    /// How many distinct texts were seen.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing was seen.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composes_to_nfc() {
        // 한 as conjoining jamo (U+1112 U+1161 U+11AB) becomes the precomposed syllable.
        let decomposed = "\u{1112}\u{1161}\u{11AB}\u{1100}\u{1173}\u{11AF} 리뷰";
        assert_eq!(clean(decomposed), "한글 리뷰");
        assert_eq!(clean("cafe\u{0301}"), "caf\u{e9}");
        assert_eq!(clean(decomposed).chars().count(), 5);
    }

    #[test]
    fn strips_tags_and_decodes_entities() {
        assert_eq!(
            clean("<p>맛있어요</p><p>또 살게요</p>"),
            "맛있어요 또 살게요"
        );
        assert_eq!(clean("정말 <b>달아요</b>!"), "정말 달아요!");
        assert_eq!(clean("크림이<br/>많아요"), "크림이 많아요");
        assert_eq!(
            clean(r#"<a href="x>y" title='a>b'>링크</a> 좋아요"#),
            "링크 좋아요"
        );
        assert_eq!(clean("<!-- hidden --> 보여요"), "보여요");
        assert_eq!(clean("<script>alert('x')</script>안전"), "안전");
        assert_eq!(clean("<STYLE type=x>p{}</STYLE>스타일"), "스타일");
        assert_eq!(
            clean("빵 &amp; 커피 &lt;3 &#54620;&#xae00;"),
            "빵 & 커피 <3 한글"
        );
        // Encoded markup is text after decoding, not a tag to strip.
        assert_eq!(clean("&lt;b&gt;굵게&lt;/b&gt;"), "<b>굵게</b>");
    }

    #[test]
    fn keeps_angle_brackets_that_open_no_tag() {
        assert_eq!(clean("최고 <3 <3"), "최고 <3 <3");
        assert_eq!(clean("가격 < 만원"), "가격 < 만원");
        assert_eq!(clean("끝나지 않은 <b 태그"), "끝나지 않은 <b 태그");
        assert_eq!(clean("<<b>>"), "<>");
        assert_eq!(clean("<"), "<");
        assert_eq!(clean("<script>열린 채로"), "");
    }

    #[test]
    fn drops_control_and_invisible_characters() {
        assert_eq!(clean("벨\u{7}소리\u{0}없이"), "벨소리없이");
        assert_eq!(clean("\u{FEFF}보이지\u{200B}않는"), "보이지않는");
        assert_eq!(clean("abc\u{202E}cba"), "abccba");
        // Entities that decode to whitespace separate words like whitespace does.
        assert_eq!(clean("탭&#9;문자&#10;줄"), "탭 문자 줄");
        // Emoji ZWJ sequences survive.
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        assert_eq!(clean(family), family);
    }

    #[test]
    fn normalises_whitespace() {
        assert_eq!(
            clean("  너무\t\t맛있어요\r\n\n또\u{3000}올게요  "),
            "너무 맛있어요 또 올게요"
        );
        assert_eq!(clean("a\u{00A0}\u{00A0}b"), "a b");
        assert_eq!(clean(" \n\t "), "");
    }

    #[test]
    fn checks_length_bounds() {
        let bounds = TextBounds::default();
        assert_eq!(clean_checked("  <br> ", bounds), Err(TextError::Empty));
        assert_eq!(clean_checked("좋아요", bounds).as_deref(), Ok("좋아요"));
        let long = "가".repeat(MAX_TEXT_CHARS + 1);
        assert_eq!(
            clean_checked(&long, bounds),
            Err(TextError::Length {
                chars: MAX_TEXT_CHARS + 1,
                min: 1,
                max: MAX_TEXT_CHARS
            })
        );
        // Bounds count characters after cleaning, not bytes or markup.
        let exact = format!("<b>{}</b>", "가".repeat(MAX_TEXT_CHARS));
        assert!(clean_checked(&exact, bounds).is_ok());
        let strict = TextBounds {
            min_chars: 5,
            max_chars: 10,
        };
        assert!(matches!(
            clean_checked("짧음", strict),
            Err(TextError::Length { chars: 2, .. })
        ));
    }

    #[test]
    fn hashes_content_and_drops_duplicates() {
        let a = ContentHash::of("p01", None, &clean("맛있어요"));
        let same = ContentHash::of("p01", None, &clean("<p> 맛있어요 </p>"));
        let other_product = ContentHash::of("p02", None, "맛있어요");
        let other_author = ContentHash::of("p01", Some("u1"), "맛있어요");
        assert_eq!(a, same);
        assert_ne!(a, other_product);
        assert_ne!(a, other_author);
        assert_eq!(a.to_string().len(), 64);
        let mut dedup = Deduplicator::default();
        assert_eq!(dedup.first_seen(a, 3), None);
        assert_eq!(dedup.first_seen(other_product, 4), None);
        assert_eq!(dedup.first_seen(same, 9), Some(3));
        assert_eq!(dedup.len(), 2);
    }
}
