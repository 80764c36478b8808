//! Who is calling: the bearer token verified against Cognito (or the dev issuer), and the
//! headers every subgraph request carries as a result.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};

use crate::error::{GatewayError, Refusal};

/// The identity header subgraphs read (set only by the gateway).
static IDENTITY: HeaderName = HeaderName::from_static(auth::IDENTITY_HEADER);

/// Verifies bearer tokens; without a verifier every caller is anonymous.
pub struct Authenticator {
    verifier: Option<auth::JwtVerifier>,
    leeway: std::time::Duration,
    signer: Option<auth::IdentitySigner>,
}

/// A caller after authentication.
#[derive(Clone, Default)]
pub struct Caller {
    /// The verified identity; `None` for anonymous callers.
    pub identity: Option<auth::Identity>,
    /// The headers forwarded to every subgraph request.
    pub subgraph_headers: HeaderMap,
    /// The token's `exp` (seconds since the Unix epoch); `None` for anonymous callers.
    pub expires_at: Option<i64>,
}

/// Names the forwarded headers without their values (the bearer token, the signed identity).
impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("identity", &self.identity)
            .field(
                "subgraph_headers",
                &self.subgraph_headers.keys().collect::<Vec<_>>(),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Authenticator {
    /// Verifies tokens issued per `config`; `None`: anonymous only (logged once here).
    pub fn new(config: Option<auth::CognitoConfig>) -> Result<Self, GatewayError> {
        let leeway = config
            .as_ref()
            .map_or(std::time::Duration::ZERO, |c| c.leeway);
        let verifier = match config {
            Some(config) => {
                tracing::info!(issuer = %config.issuer(), "bearer tokens verified against this issuer");
                Some(
                    auth::JwtVerifier::new(config)
                        .map_err(|e| GatewayError::Auth(e.to_string()))?,
                )
            }
            None => {
                tracing::warn!(
                    "no Cognito configuration: every request is anonymous and bearer tokens are ignored"
                );
                None
            }
        };
        Ok(Self {
            verifier,
            leeway,
            signer: None,
        })
    }

    /// The same, signing the identity it passes to subgraphs with `signer` (when given).
    pub fn with_signer(mut self, signer: Option<auth::IdentitySigner>) -> Self {
        self.signer = signer;
        self
    }

    /// How long after `exp` a token is still accepted (the verifier's clock-skew leeway).
    pub fn leeway(&self) -> std::time::Duration {
        self.leeway
    }

    /// Authenticates the `Authorization` value of an HTTP request or of a WebSocket
    /// `connection_init` payload. A present but invalid token is refused (401); no token is
    /// an anonymous caller.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, Refusal> {
        let Some(authorization) = authorization.map(str::trim).filter(|a| !a.is_empty()) else {
            return Ok(Caller::default());
        };
        let Some(verifier) = &self.verifier else {
            return Ok(Caller::default());
        };
        let token = bearer_token(authorization).ok_or_else(|| {
            Refusal::unauthenticated("the Authorization header must be `Bearer <token>`")
        })?;
        let verified = verifier.verify(token).await.map_err(|err| {
            let status = match err {
                auth::TokenError::JwksUnavailable(ref detail)
                | auth::TokenError::InvalidConfig(ref detail) => {
                    tracing::error!(error = %detail, "cannot verify bearer tokens");
                    StatusCode::SERVICE_UNAVAILABLE
                }
                _ => StatusCode::UNAUTHORIZED,
            };
            Refusal::new(status, err.code(), err.to_string())
        })?;
        let (identity, expires_at) = (verified.identity, verified.expires_at);
        let mut subgraph_headers = HeaderMap::with_capacity(2);
        // Built from scratch: a client-supplied identity header never reaches a subgraph.
        let value = match &self.signer {
            Some(signer) => signer.header_value(&identity, expires_at),
            None => identity.to_header_value(),
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            subgraph_headers.insert(IDENTITY.clone(), value);
        }
        if let Ok(value) = HeaderValue::from_str(authorization) {
            subgraph_headers.insert(header::AUTHORIZATION, value);
        }
        Ok(Caller {
            identity: Some(identity),
            subgraph_headers,
            expires_at: Some(expires_at),
        })
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive).
fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The `Authorization` value of an HTTP request, if readable.
pub fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_tokens_only() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("abc"), None);
    }

    #[test]
    fn a_callers_debug_shows_no_header_values() {
        let mut subgraph_headers = HeaderMap::new();
        subgraph_headers.insert(
            header::AUTHORIZATION,
            "Bearer secret-token".parse().unwrap(),
        );
        let caller = Caller {
            identity: Some(auth::Identity::customer("kim")),
            subgraph_headers,
            expires_at: Some(1),
        };
        let shown = format!("{caller:?}");
        assert!(
            shown.contains("authorization") && shown.contains("kim"),
            "{shown}"
        );
        assert!(!shown.contains("secret-token"), "{shown}");
    }

    #[tokio::test]
    async fn without_a_verifier_everyone_is_anonymous() {
        let auth = Authenticator::new(None).unwrap();
        let caller = auth.authenticate(Some("Bearer whatever")).await.unwrap();
        assert!(caller.identity.is_none());
        assert!(caller.subgraph_headers.is_empty());
    }
}
