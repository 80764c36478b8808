//! Outbound in-flight deduplication: identical subgraph queries sent while one is already on
//! its way share that one request and its answer (Hive Router's `dedupe_enabled`, Apollo
//! Router's `deduplicate_query`).
//!
//! Two requests are identical when their URL, their headers (trace context aside) and their
//! bodies are byte for byte the same. Only queries are deduplicated, never mutations. An
//! entry lives exactly as long as its request: it is removed when the answer arrives, or when
//! every waiter has gone away (the request is then dropped, as it would be without sharing).
//!
//! What the waiters share is the reply after the map's `finish` (the executor parses it
//! there), so a response is parsed once however many requests joined it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared, WeakShared};
use http::HeaderMap;
use rustc_hash::FxHashMap;

use super::subgraph::{SubgraphReply, SubgraphTransport, TransportError};

/// Headers that differ per client request without changing the subgraph's answer.
const IGNORED_HEADERS: [&str; 3] = ["traceparent", "tracestate", "baggage"];

/// One request's answer as its waiters share it.
type Request<T> = BoxFuture<'static, T>;

/// Turns a subgraph's reply into the answer its waiters share.
pub(crate) type Finish<T> = fn(Result<SubgraphReply, TransportError>) -> T;

/// Subgraph requests on their way, by the exact bytes that make them identical; `T` is the
/// answer the waiters share.
pub(crate) struct Inflight<T> {
    entries: Arc<Mutex<Entries<T>>>,
    finish: Finish<T>,
}

struct Entries<T> {
    next_id: u64,
    by_key: FxHashMap<Vec<u8>, (u64, WeakShared<Request<T>>)>,
}

/// Removes an entry when its request finishes or is dropped.
struct Cleanup<T> {
    entries: Arc<Mutex<Entries<T>>>,
    key: Vec<u8>,
    id: u64,
}

impl<T> Drop for Cleanup<T> {
    fn drop(&mut self) {
        let mut entries = lock(&self.entries);
        if entries
            .by_key
            .get(&self.key)
            .is_some_and(|(id, _)| *id == self.id)
        {
            entries.by_key.remove(&self.key);
        }
    }
}

fn lock<T>(entries: &Mutex<Entries<T>>) -> std::sync::MutexGuard<'_, Entries<T>> {
    entries
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The bytes two requests must share to be one: URL, headers but trace context, body.
fn key(url: &str, headers: &HeaderMap, body: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(url.len() + body.len() + 64 * headers.len() + 2);
    key.extend_from_slice(url.as_bytes());
    key.push(0);
    for (name, value) in headers {
        if IGNORED_HEADERS.contains(&name.as_str()) {
            continue;
        }
        key.extend_from_slice(name.as_str().as_bytes());
        key.push(b':');
        key.extend_from_slice(value.as_bytes());
        key.push(0);
    }
    key.push(0);
    key.extend_from_slice(body);
    key
}

impl<T: Clone + Send + Sync + 'static> Inflight<T> {
    /// No request on its way yet; each reply becomes the shared answer through `finish`.
    pub(crate) fn new(finish: Finish<T>) -> Self {
        Self {
            entries: Arc::new(Mutex::new(Entries {
                next_id: 0,
                by_key: FxHashMap::default(),
            })),
            finish,
        }
    }

    /// How many distinct requests are on their way (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.entries).by_key.len()
    }

    /// Sends the request and turns its reply into the shared answer, or joins an identical
    /// request already on its way. The flag says whether this call joined.
    pub(crate) async fn post(
        &self,
        transport: &Arc<dyn SubgraphTransport>,
        subgraph: &str,
        url: &str,
        headers: HeaderMap,
        body: Vec<u8>,
        timeout: Duration,
    ) -> (T, bool) {
        let key = key(url, &headers, &body);
        let (shared, joined) = {
            let mut entries = lock(&self.entries);
            match entries
                .by_key
                .get(&key)
                .and_then(|(_, weak)| weak.upgrade())
            {
                Some(shared) => (shared, true),
                None => {
                    entries.next_id += 1;
                    let id = entries.next_id;
                    let cleanup = Cleanup {
                        entries: Arc::clone(&self.entries),
                        key: key.clone(),
                        id,
                    };
                    let transport = Arc::clone(transport);
                    let (subgraph, url) = (subgraph.to_owned(), url.to_owned());
                    let finish = self.finish;
                    let request: Request<T> = async move {
                        let _cleanup = cleanup;
                        finish(
                            transport
                                .post(&subgraph, &url, headers, body, timeout)
                                .await,
                        )
                    }
                    .boxed();
                    let shared: Shared<Request<T>> = request.shared();
                    if let Some(weak) = shared.downgrade() {
                        entries.by_key.insert(key, (id, weak));
                    }
                    (shared, false)
                }
            }
        };
        (shared.await, joined)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http::HeaderValue;
    use tokio::sync::Notify;

    use super::*;

    /// Answers after `release` is notified, counting requests.
    struct Gate {
        calls: AtomicUsize,
        release: Notify,
    }

    impl SubgraphTransport for Gate {
        fn post<'a>(
            &'a self,
            _subgraph: &'a str,
            _url: &'a str,
            _headers: HeaderMap,
            body: Vec<u8>,
            _timeout: Duration,
        ) -> BoxFuture<'a, Result<SubgraphReply, TransportError>> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            async move {
                self.release.notified().await;
                Ok(SubgraphReply {
                    status: 200,
                    body: Bytes::from(format!("{call}:{}", String::from_utf8_lossy(&body))),
                })
            }
            .boxed()
        }
    }

    /// The raw reply, with the error made shareable.
    type Raw = Result<SubgraphReply, Arc<str>>;

    fn raw(reply: Result<SubgraphReply, TransportError>) -> Raw {
        reply.map_err(|error| Arc::from(error.0))
    }

    fn gate() -> Arc<Gate> {
        Arc::new(Gate {
            calls: AtomicUsize::new(0),
            release: Notify::new(),
        })
    }

    #[test]
    fn trace_context_is_not_part_of_the_key_but_other_headers_are() {
        let mut a = HeaderMap::new();
        a.insert("authorization", HeaderValue::from_static("Bearer a"));
        a.insert("traceparent", HeaderValue::from_static("00-1-1-01"));
        let mut b = a.clone();
        b.insert("traceparent", HeaderValue::from_static("00-2-2-01"));
        assert_eq!(key("u", &a, b"q"), key("u", &b, b"q"));
        b.insert("authorization", HeaderValue::from_static("Bearer b"));
        assert_ne!(key("u", &a, b"q"), key("u", &b, b"q"));
        assert_ne!(key("u", &a, b"q"), key("v", &a, b"q"));
        assert_ne!(key("u", &a, b"q"), key("u", &a, b"r"));
    }

    #[tokio::test]
    async fn identical_requests_share_one_and_the_entry_goes_with_it() {
        let gate = gate();
        let transport: Arc<dyn SubgraphTransport> = gate.clone();
        let inflight = Inflight::new(raw);
        let send = |body: &'static str| {
            inflight.post(
                &transport,
                "s",
                "http://s",
                HeaderMap::new(),
                body.as_bytes().to_vec(),
                Duration::from_secs(5),
            )
        };
        let waiting = futures::future::join_all([send("q"), send("q"), send("q"), send("other")]);
        let release = async {
            while gate.calls.load(Ordering::SeqCst) < 2 {
                tokio::task::yield_now().await;
            }
            tokio::task::yield_now().await;
            assert_eq!(inflight.len(), 2);
            gate.release.notify_waiters();
        };
        let (results, ()) = tokio::join!(waiting, release);
        assert_eq!(gate.calls.load(Ordering::SeqCst), 2);
        let bodies: Vec<(String, bool)> = results
            .into_iter()
            .map(|(reply, joined)| {
                (
                    String::from_utf8(reply.unwrap().body.to_vec()).unwrap(),
                    joined,
                )
            })
            .collect();
        assert_eq!(bodies[0].0, bodies[1].0);
        assert_eq!(bodies[0].0, bodies[2].0);
        assert!(bodies[3].0.ends_with(":other"));
        assert_eq!(
            bodies.iter().filter(|(_, joined)| *joined).count(),
            2,
            "two of the three identical requests joined the first"
        );
        assert_eq!(inflight.len(), 0, "finished requests leave nothing behind");

        // A later identical request is sent again, not answered from the finished one.
        let later = send("q");
        let release = async {
            while gate.calls.load(Ordering::SeqCst) < 3 {
                tokio::task::yield_now().await;
            }
            gate.release.notify_waiters();
        };
        let ((reply, joined), ()) = tokio::join!(later, release);
        assert!(!joined);
        assert!(
            String::from_utf8(reply.unwrap().body.to_vec())
                .unwrap()
                .starts_with("2:")
        );
    }

    #[tokio::test]
    async fn a_request_everyone_abandoned_leaves_no_entry() {
        let gate = gate();
        let transport: Arc<dyn SubgraphTransport> = gate.clone();
        let inflight = Inflight::new(raw);
        let pending = inflight.post(
            &transport,
            "s",
            "http://s",
            HeaderMap::new(),
            b"q".to_vec(),
            Duration::from_secs(5),
        );
        let timed_out = tokio::time::timeout(Duration::from_millis(20), pending).await;
        assert!(timed_out.is_err());
        assert_eq!(gate.calls.load(Ordering::SeqCst), 1);
        assert_eq!(inflight.len(), 0);
    }
}
