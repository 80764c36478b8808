//! Why a bearer token was refused.

/// Why a token was refused. Messages are safe to show to clients; every code is `UNAUTHENTICATED`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a well-formed JWT, or a required claim is missing or of the wrong type.
    #[error("the token is malformed")]
    Malformed,
    /// `exp` has passed (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured user pool.
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    /// `client_id` (access token) or `aud` (id token) is not the configured app client.
    #[error("the token was issued for another client")]
    WrongAudience,
    /// `token_use` is neither `access` nor `id`.
    #[error("the token is neither an access token nor an id token")]
    WrongTokenUse,
    /// The header's `alg` is not RS256.
    #[error("the token's signing algorithm is not accepted")]
    UnsupportedAlgorithm,
    /// The header's `kid` names no key the user pool publishes.
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    /// The signature does not match the header and payload.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// The user pool's keys could not be fetched; the detail is for logs only.
    #[error("the identity provider cannot be reached; try again shortly")]
    JwksUnavailable(String),
    /// The verifier was configured wrongly; the detail is for logs only.
    #[error("token verification is not configured")]
    InvalidConfig(String),
}

impl TokenError {
    /// A stable, machine-readable code: the GraphQL `extensions.code`.
    pub fn code(&self) -> &'static str {
        "UNAUTHENTICATED"
    }
}
