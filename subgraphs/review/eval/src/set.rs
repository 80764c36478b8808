//! The evaluation set on disk: products, reviews and graded queries (JSON Lines), checked as
//! they are read, and the one document text per review that every system indexes.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::EvalError;

/// A product of the fictional shop.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// `p01` …
    pub id: String,
    /// Name as shown in the app.
    pub name: String,
    /// Category (`cake`, `macaron`, …).
    pub category: String,
    /// Price in KRW.
    pub price: u64,
}

/// A review of a product.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Review {
    /// `r001` …
    pub id: String,
    /// The reviewed product.
    pub product_id: String,
    /// 1–5 stars.
    pub rating: u8,
    /// The review text.
    pub text: String,
}

/// A query with graded relevance judgements.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// `q01` …
    pub id: String,
    /// What the user types.
    pub query: String,
    /// `paraphrase`, `lexical` or `product`.
    pub kind: String,
    /// Review id → grade 1..=3; unlisted reviews have grade 0.
    pub relevant: HashMap<String, u8>,
}

/// One review as the searched text: the product name, a newline, the review text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Review id.
    pub id: String,
    /// Product id.
    pub product_id: String,
    /// Product category.
    pub category: String,
    /// The indexed text (what BM25 indexes).
    pub text: String,
    /// The product name semantic search titles the review's passages with (empty when the
    /// product name is not part of the documents).
    pub title: String,
    /// The review text alone.
    pub body: String,
}

/// What text stands for a review in the index (the same for every system in one run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DocumentText {
    /// `"{product name}\n{review text}"`: the README's protocol.
    #[default]
    NameAndText,
    /// The review text alone: what the review subgraph embeds.
    Text,
}

impl DocumentText {
    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NameAndText => "name-and-text",
            Self::Text => "text",
        }
    }
}

/// The whole evaluation set.
#[derive(Debug, Clone)]
pub struct EvalSet {
    /// Products, in file order.
    pub products: Vec<Product>,
    /// Reviews, in file order.
    pub reviews: Vec<Review>,
    /// Queries, in file order.
    pub queries: Vec<Query>,
}

/// The set shipped with this crate (`subgraphs/review/eval`).
pub fn default_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_lines<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| EvalError::Format {
                path: path.to_path_buf(),
                line: i + 1,
                reason: e.to_string(),
            })
        })
        .collect()
}

impl EvalSet {
    /// Reads `products.jsonl`, `reviews.jsonl` and `queries.jsonl` from `dir` and checks that
    /// ids are unique and every reference and grade is valid.
    pub fn load(dir: &Path) -> Result<Self, EvalError> {
        let set = Self {
            products: read_lines(&dir.join("products.jsonl"))?,
            reviews: read_lines(&dir.join("reviews.jsonl"))?,
            queries: read_lines(&dir.join("queries.jsonl"))?,
        };
        set.check(dir)?;
        Ok(set)
    }

    fn check(&self, dir: &Path) -> Result<(), EvalError> {
        let fail = |file: &str, line: usize, reason: String| EvalError::Format {
            path: dir.join(file),
            line,
            reason,
        };
        let mut products = HashSet::new();
        for (i, p) in self.products.iter().enumerate() {
            if !products.insert(p.id.as_str()) {
                return Err(fail(
                    "products.jsonl",
                    i + 1,
                    format!("duplicate id {}", p.id),
                ));
            }
        }
        let mut reviews = HashSet::new();
        for (i, r) in self.reviews.iter().enumerate() {
            if !reviews.insert(r.id.as_str()) {
                return Err(fail(
                    "reviews.jsonl",
                    i + 1,
                    format!("duplicate id {}", r.id),
                ));
            }
            if !products.contains(r.product_id.as_str()) {
                let reason = format!("unknown product {}", r.product_id);
                return Err(fail("reviews.jsonl", i + 1, reason));
            }
        }
        let mut queries = HashSet::new();
        for (i, q) in self.queries.iter().enumerate() {
            if !queries.insert(q.id.as_str()) {
                return Err(fail(
                    "queries.jsonl",
                    i + 1,
                    format!("duplicate id {}", q.id),
                ));
            }
            if q.relevant.is_empty() {
                return Err(fail("queries.jsonl", i + 1, "no relevant reviews".into()));
            }
            for (id, grade) in &q.relevant {
                if !reviews.contains(id.as_str()) || !(1..=3).contains(grade) {
                    let reason = format!("bad judgement {id}: {grade}");
                    return Err(fail("queries.jsonl", i + 1, reason));
                }
            }
        }
        Ok(())
    }

    /// One document per review, in review order, its text as `text` says.
    pub fn documents(&self, text: DocumentText) -> Vec<Document> {
        let products: HashMap<&str, &Product> =
            self.products.iter().map(|p| (p.id.as_str(), p)).collect();
        self.reviews
            .iter()
            .map(|r| {
                let (name, category) = products
                    .get(r.product_id.as_str())
                    .map_or(("", ""), |p| (p.name.as_str(), p.category.as_str()));
                Document {
                    id: r.id.clone(),
                    product_id: r.product_id.clone(),
                    category: category.to_string(),
                    text: match text {
                        DocumentText::NameAndText => format!("{name}\n{}", r.text),
                        DocumentText::Text => r.text.clone(),
                    },
                    title: match text {
                        DocumentText::NameAndText => name.to_string(),
                        DocumentText::Text => String::new(),
                    },
                    body: r.text.clone(),
                }
            })
            .collect()
    }
}
