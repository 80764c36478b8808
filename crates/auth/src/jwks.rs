//! The user pool's signing keys: fetched from its JWKS URL, cached, and refreshed when a token
//! names an unknown `kid` or the keys are older than their maximum age (at most once per
//! interval, one fetch shared by all who wait for it). A key the pool removed stops verifying
//! once the keys are refetched; while the JWKS URL cannot be reached, keys already fetched stay
//! trusted for [`STALE_KEYS_GRACE`] beyond their age, so an identity-provider outage does not
//! log everyone out at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse};

use crate::token_error::TokenError;

/// Largest JWKS document read, in bytes (Cognito's is about 1 KiB).
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// How long one JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long connecting to the JWKS host may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long past their maximum age fetched keys stay trusted while refetching them fails.
pub(crate) const STALE_KEYS_GRACE: Duration = Duration::from_secs(3600);

/// The RS256 verification keys of one JWKS document, by `kid`.
#[derive(Default)]
pub(crate) struct KeySet {
    keys: HashMap<String, Arc<DecodingKey>>,
}

impl KeySet {
    /// Reads a JWKS document, keeping the RSA signature keys usable with RS256 and skipping the rest.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document =
            serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
        let keys = document
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter_map(|jwk| {
                let usable = matches!(jwk.algorithm, AlgorithmParameters::RSA(_))
                    && matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::RS256))
                    && matches!(
                        jwk.common.public_key_use,
                        None | Some(PublicKeyUse::Signature)
                    );
                let kid = jwk.common.key_id.clone()?;
                let key = DecodingKey::from_jwk(&jwk).ok()?;
                usable.then(|| (kid, Arc::new(key)))
            })
            .collect::<HashMap<_, _>>();
        if keys.is_empty() {
            return Err("the JWKS document has no RS256 signature keys".to_owned());
        }
        Ok(Self { keys })
    }

    fn get(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        self.keys.get(kid).cloned()
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

type Fetch = Shared<BoxFuture<'static, Result<Arc<KeySet>, TokenError>>>;

/// The cache of one user pool's keys.
pub(crate) struct JwksCache {
    url: String,
    http: reqwest::Client,
    min_refresh_interval: Duration,
    max_age: Duration,
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    keys: Arc<KeySet>,
    /// When the fetch that produced `keys` started; `None` before the first success.
    keys_fetched: Option<Instant>,
    /// When the last fetch started; `None` before the first.
    last_fetch: Option<Instant>,
    /// Why the last fetch failed, while its failure is the latest news.
    last_failure: Option<TokenError>,
    /// The fetch under way and its number.
    in_flight: Option<(u64, Instant, Fetch)>,
    fetches: u64,
}

impl CacheState {
    /// The cached key `kid` if the keys are younger than `age`.
    fn key_younger_than(&self, kid: &str, age: Duration) -> Option<Arc<DecodingKey>> {
        let young = self.keys_fetched.is_some_and(|at| at.elapsed() < age);
        if young { self.keys.get(kid) } else { None }
    }
}

impl JwksCache {
    /// A cache of the keys at `url`, fetched at most once per `min_refresh_interval` and
    /// trusted for `max_age` after their fetch.
    pub(crate) fn new(
        url: String,
        min_refresh_interval: Duration,
        max_age: Duration,
    ) -> Result<Self, TokenError> {
        let parsed = reqwest::Url::parse(&url)
            .map_err(|e| TokenError::InvalidConfig(format!("JWKS URL {url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(TokenError::InvalidConfig(format!(
                "JWKS URL {url:?} is not http(s)"
            )));
        }
        // reqwest is built without a TLS crypto provider; install ring once per process.
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!("bloody-sweet-auth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TokenError::InvalidConfig(format!("http client: {e}")))?;
        Ok(Self {
            url,
            http,
            min_refresh_interval,
            max_age,
            state: Mutex::new(CacheState::default()),
        })
    }

    /// The JWKS URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The key named `kid`, fetching the JWKS when it is unknown or the keys are too old and a
    /// fetch is allowed.
    pub(crate) async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, TokenError> {
        let stale_limit = self.max_age.saturating_add(STALE_KEYS_GRACE);
        let (number, started, fetch) = {
            let mut state = self.lock();
            if let Some(key) = state.key_younger_than(kid, self.max_age) {
                return Ok(key);
            }
            match &state.in_flight {
                Some((number, started, fetch)) => (*number, *started, fetch.clone()),
                None => {
                    let recent = state
                        .last_fetch
                        .is_some_and(|at| at.elapsed() < self.min_refresh_interval);
                    if recent {
                        // A fetch failed moments ago: old keys still serve within the grace.
                        if let Some(key) = state.key_younger_than(kid, stale_limit) {
                            return Ok(key);
                        }
                        return Err(state.last_failure.clone().unwrap_or(TokenError::UnknownKey));
                    }
                    state.fetches += 1;
                    let number = state.fetches;
                    let fetch = fetch_keys(self.http.clone(), self.url.clone())
                        .boxed()
                        .shared();
                    let started = Instant::now();
                    state.last_fetch = Some(started);
                    state.in_flight = Some((number, started, fetch.clone()));
                    (number, started, fetch)
                }
            }
        };
        let fetched = fetch.await;
        let mut state = self.lock();
        if state.in_flight.as_ref().is_some_and(|(n, ..)| *n == number) {
            state.in_flight = None;
            match &fetched {
                Ok(keys) => {
                    state.keys = keys.clone();
                    state.keys_fetched = Some(started);
                    state.last_failure = None;
                }
                Err(error) => state.last_failure = Some(error.clone()),
            }
        }
        match fetched {
            Ok(keys) => keys.get(kid).ok_or(TokenError::UnknownKey),
            Err(error) => state.key_younger_than(kid, stale_limit).ok_or(error),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        // The state stays consistent even if a holder panicked: every update is one assignment.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn fetch_keys(http: reqwest::Client, url: String) -> Result<Arc<KeySet>, TokenError> {
    let result = read_document(&http, &url)
        .await
        .and_then(|body| KeySet::parse(&body));
    match result {
        Ok(keys) => {
            tracing::info!(url = %url, keys = keys.len(), "fetched jwks");
            Ok(Arc::new(keys))
        }
        Err(reason) => {
            tracing::warn!(url = %url, error = %reason, "jwks fetch failed");
            Err(TokenError::JwksUnavailable(reason))
        }
    }
}

async fn read_document(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut response = http
        .get(url)
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("cannot reach the JWKS URL: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("the JWKS URL answered {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("cannot read the JWKS document: {e}"))?
    {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!("the JWKS document exceeds {MAX_JWKS_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn modulus() -> String {
        URL_SAFE_NO_PAD.encode([0xab_u8; 256])
    }

    fn rsa_jwk(kid: &str, alg: &str) -> serde_json::Value {
        serde_json::json!({"kty": "RSA", "kid": kid, "alg": alg, "use": "sig", "n": modulus(), "e": "AQAB"})
    }

    #[test]
    fn keeps_only_rs256_signature_keys() {
        let document = serde_json::json!({"keys": [
            rsa_jwk("a", "RS256"),
            rsa_jwk("b", "RS384"),
            {"kty": "oct", "kid": "c", "k": "c2VjcmV0"},
            {"kty": "whatever", "kid": "d"},
            {"kty": "RSA", "n": modulus(), "e": "AQAB"},
        ]});
        let keys = KeySet::parse(document.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys.get("a").is_some());
        assert!(keys.get("b").is_none());
        assert!(keys.get("c").is_none());
    }

    #[test]
    fn refuses_documents_without_usable_keys() {
        assert!(KeySet::parse(b"{\"keys\": []}").is_err());
        assert!(KeySet::parse(b"<html>").is_err());
        assert!(KeySet::parse(b"").is_err());
    }
}
