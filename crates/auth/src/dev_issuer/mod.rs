//! A real, local OpenID issuer for development and tests that signs Cognito-shaped tokens.
//!
//! **Development only.** It hands a token for any user in any group to whoever asks, so it
//! refuses to listen anywhere but a loopback address. It generates a fresh RSA-2048 key pair
//! at start (no key material on disk) and serves `GET /.well-known/jwks.json` and
//! `POST /token`. `bloody-sweet up` runs it on [`DEV_ISSUER_ADDR`].

mod keys;
mod mint;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::CognitoConfig;
use keys::{KeyRing, SigningKey};
pub use mint::{DEFAULT_TTL_SECS, MAX_TTL_SECS, MintRequest, MintResponse, dev_user_sub};

/// Where `bloody-sweet up` serves the dev issuer.
pub const DEV_ISSUER_ADDR: &str = "127.0.0.1:4011";

/// Why the dev issuer could not start or mint a token.
#[derive(Debug, thiserror::Error)]
pub enum DevIssuerError {
    /// The listener is not on a loopback address.
    #[error("the dev issuer only listens on loopback addresses, not {0}")]
    NotLoopback(SocketAddr),
    /// The listener's address could not be read.
    #[error("cannot read the listener address: {0}")]
    Listener(#[from] std::io::Error),
    /// No key pair could be generated.
    #[error("cannot generate a signing key: {0}")]
    KeyGeneration(String),
    /// The claims could not be signed.
    #[error("cannot sign the token: {0}")]
    Signing(String),
    /// The token request is invalid.
    #[error("invalid token request: {0}")]
    BadRequest(&'static str),
}

/// A running dev issuer; it stops when dropped or on [`DevIssuer::shutdown`].
pub struct DevIssuer {
    state: Arc<IssuerState>,
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

struct IssuerState {
    issuer: String,
    client_id: String,
    keys: RwLock<KeyRing>,
    jwks_requests: AtomicU64,
}

impl IssuerState {
    fn current_key(&self) -> Arc<SigningKey> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .current()
    }

    fn mint(&self, request: &MintRequest) -> Result<String, DevIssuerError> {
        let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX);
        let claims = mint::cognito_claims(&self.issuer, &self.client_id, request, now)?;
        self.current_key().sign(&claims)
    }
}

impl DevIssuer {
    /// Generates a key pair and serves the issuer on `listener` (which must be loopback) for `client_id`.
    pub async fn start(listener: TcpListener, client_id: &str) -> Result<Self, DevIssuerError> {
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            return Err(DevIssuerError::NotLoopback(addr));
        }
        if client_id.is_empty() {
            return Err(DevIssuerError::BadRequest("the client id is empty"));
        }
        let key = SigningKey::generate().await?;
        let state = Arc::new(IssuerState {
            issuer: format!("http://{addr}"),
            client_id: client_id.to_owned(),
            keys: RwLock::new(KeyRing::new(key)),
            jwks_requests: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/.well-known/jwks.json", get(jwks))
            .route("/token", post(token))
            .with_state(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                // Resolves on `shutdown()` and when the `DevIssuer` is dropped.
                let _ = stopped.await;
            });
            if let Err(error) = serve.await {
                tracing::warn!(%error, "dev issuer stopped");
            }
        });
        tracing::info!(issuer = %state.issuer, "dev issuer listening");
        Ok(Self {
            state,
            addr,
            stop,
            server,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, which is also the `iss` of its tokens, e.g. `http://127.0.0.1:4011`.
    pub fn base_url(&self) -> &str {
        &self.state.issuer
    }

    /// The app client id its tokens are issued for.
    pub fn client_id(&self) -> &str {
        &self.state.client_id
    }

    /// The verifier configuration that accepts its tokens.
    pub fn config(&self) -> CognitoConfig {
        CognitoConfig::dev(&self.state.issuer, &self.state.client_id)
    }

    /// Signs a token in-process, as `POST /token` would.
    pub fn mint(&self, request: &MintRequest) -> Result<String, DevIssuerError> {
        self.state.mint(request)
    }

    /// The claims [`DevIssuer::mint`] would sign, for tests that alter them before [`DevIssuer::sign`].
    pub fn claims(&self, request: &MintRequest) -> Result<serde_json::Value, DevIssuerError> {
        let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX);
        let claims = mint::cognito_claims(&self.state.issuer, &self.state.client_id, request, now)?;
        serde_json::to_value(claims).map_err(|e| DevIssuerError::Signing(e.to_string()))
    }

    /// Signs any claims with the current key (tests use it to make tokens that must be refused).
    pub fn sign(&self, claims: &serde_json::Value) -> Result<String, DevIssuerError> {
        self.state.current_key().sign(claims)
    }

    /// The `kid` of the key that signs now.
    pub fn current_kid(&self) -> String {
        self.state.current_key().kid().to_owned()
    }

    /// Generates a new key pair that signs from now on; the previous key stays published.
    pub async fn rotate_key(&self) -> Result<(), DevIssuerError> {
        let key = SigningKey::generate().await?;
        tracing::info!(kid = key.kid(), "dev issuer rotated its signing key");
        self.state
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .rotate(key);
        Ok(())
    }

    /// How many times its JWKS has been fetched.
    pub fn jwks_requests(&self) -> u64 {
        self.state.jwks_requests.load(Ordering::Relaxed)
    }

    /// Stops serving and waits for open requests to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        if let Err(error) = self.server.await {
            tracing::warn!(%error, "dev issuer task failed");
        }
    }
}

impl std::fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIssuer")
            .field("issuer", &self.state.issuer)
            .field("client_id", &self.state.client_id)
            .finish()
    }
}

async fn jwks(State(state): State<Arc<IssuerState>>) -> Response {
    state.jwks_requests.fetch_add(1, Ordering::Relaxed);
    let set = state
        .keys
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .jwks();
    Json(set).into_response()
}

async fn token(
    State(state): State<Arc<IssuerState>>,
    body: Result<Json<MintRequest>, JsonRejection>,
) -> Response {
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => return refusal(rejection.status(), &rejection.body_text()),
    };
    match state.mint(&request) {
        Ok(token) => Json(MintResponse::new(token, &request)).into_response(),
        Err(error @ DevIssuerError::BadRequest(_)) => {
            refusal(StatusCode::BAD_REQUEST, &error.to_string())
        }
        Err(error) => {
            tracing::warn!(%error, "dev issuer could not mint a token");
            refusal(StatusCode::INTERNAL_SERVER_ERROR, "cannot mint a token")
        }
    }
}

fn refusal(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": status.as_str(), "message": message });
    (status, Json(body)).into_response()
}
