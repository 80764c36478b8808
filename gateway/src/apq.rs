//! Automatic persisted queries: a client sends `extensions.persistedQuery.sha256Hash` alone,
//! and the query text only when the gateway answers `PERSISTED_QUERY_NOT_FOUND`.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::StatusCode;
use lru::LruCache;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::Refusal;

/// A bounded cache of query texts by their SHA-256 (least recently used go first).
pub struct PersistedQueries {
    cache: Mutex<LruCache<String, Arc<str>>>,
}

/// The query text of a request, and whether it should be remembered once it proves valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedQuery {
    /// The GraphQL document.
    pub text: Arc<str>,
    /// The hash to remember it by, when the client sent both hash and text.
    pub register: Option<String>,
}

impl PersistedQueries {
    /// A cache of at most `capacity` queries (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            cache: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// The query a request stands for: its text, or the cached text of its persisted hash.
    pub fn resolve(
        &self,
        query: Option<String>,
        extensions: Option<&Map<String, Value>>,
    ) -> Result<ResolvedQuery, Refusal> {
        let Some(persisted) = extensions.and_then(|e| e.get("persistedQuery")) else {
            return match query {
                Some(text) if !text.trim().is_empty() => Ok(ResolvedQuery {
                    text: text.into(),
                    register: None,
                }),
                _ => Err(Refusal::bad_request("the request has no query")),
            };
        };
        let hash = persisted_hash(persisted)?;
        match query {
            Some(text) => {
                if sha256_hex(&text) != hash {
                    return Err(Refusal::new(
                        StatusCode::BAD_REQUEST,
                        "PERSISTED_QUERY_HASH_MISMATCH",
                        "the query does not match extensions.persistedQuery.sha256Hash",
                    ));
                }
                Ok(ResolvedQuery {
                    text: text.into(),
                    register: Some(hash),
                })
            }
            None => match self.lock().get(&hash) {
                Some(text) => Ok(ResolvedQuery {
                    text: text.clone(),
                    register: None,
                }),
                None => Err(Refusal::new(
                    StatusCode::OK,
                    "PERSISTED_QUERY_NOT_FOUND",
                    "PersistedQueryNotFound",
                )),
            },
        }
    }

    /// Remembers `text` under `hash` (call once the query proved valid).
    pub fn register(&self, hash: String, text: Arc<str>) {
        self.lock().put(hash, text);
    }

    /// How many queries are cached.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, Arc<str>>> {
        // No code path can panic while holding this lock with the cache half-updated.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The lowercase hex SHA-256 of `text`.
pub fn sha256_hex(text: &str) -> String {
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

fn persisted_hash(persisted: &Value) -> Result<String, Refusal> {
    let invalid = |message: &str| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "PERSISTED_QUERY_INVALID",
            message.to_owned(),
        )
    };
    let version = persisted.get("version").and_then(Value::as_u64);
    if version != Some(1) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "PERSISTED_QUERY_NOT_SUPPORTED",
            "only extensions.persistedQuery.version 1 is supported",
        ));
    }
    let hash = persisted
        .get("sha256Hash")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("extensions.persistedQuery.sha256Hash must be a string"))?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(
            "extensions.persistedQuery.sha256Hash must be 64 hex digits",
        ));
    }
    Ok(hash.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ext(hash: &str) -> Map<String, Value> {
        json!({"persistedQuery": {"version": 1, "sha256Hash": hash}})
            .as_object()
            .cloned()
            .unwrap()
    }

    #[test]
    fn unknown_hash_then_registered_then_found() {
        let apq = PersistedQueries::new(2);
        let query = "{ menu { id } }";
        let hash = sha256_hex(query);
        let err = apq.resolve(None, Some(&ext(&hash))).unwrap_err();
        assert_eq!(err.code, "PERSISTED_QUERY_NOT_FOUND");
        let resolved = apq.resolve(Some(query.into()), Some(&ext(&hash))).unwrap();
        assert_eq!(resolved.register.as_deref(), Some(hash.as_str()));
        apq.register(hash.clone(), resolved.text);
        let found = apq.resolve(None, Some(&ext(&hash))).unwrap();
        assert_eq!(&*found.text, query);
        assert_eq!(found.register, None);
    }

    #[test]
    fn mismatch_bad_version_and_eviction() {
        let apq = PersistedQueries::new(1);
        let err = apq
            .resolve(Some("{ a }".into()), Some(&ext(&sha256_hex("{ b }"))))
            .unwrap_err();
        assert_eq!(err.code, "PERSISTED_QUERY_HASH_MISMATCH");
        let bad = json!({"persistedQuery": {"version": 2, "sha256Hash": "x"}});
        let err = apq
            .resolve(None, Some(bad.as_object().unwrap()))
            .unwrap_err();
        assert_eq!(err.code, "PERSISTED_QUERY_NOT_SUPPORTED");
        let err = apq.resolve(None, Some(&ext("zz"))).unwrap_err();
        assert_eq!(err.code, "PERSISTED_QUERY_INVALID");
        apq.register(sha256_hex("{ a }"), "{ a }".into());
        apq.register(sha256_hex("{ b }"), "{ b }".into());
        assert_eq!(apq.len(), 1, "bounded");
        assert!(apq.resolve(None, Some(&ext(&sha256_hex("{ a }")))).is_err());
        let err = apq.resolve(None, None).unwrap_err();
        assert_eq!(err.code, "BAD_REQUEST");
    }
}
