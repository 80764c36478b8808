//! Verifying a Cognito access or id token: RS256 signature against the pool's keys, issuer,
//! times, `token_use` and app client, then reading the caller out of it.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};

use crate::claims::{CognitoClaims, TokenUse};
use crate::config::CognitoConfig;
use crate::identity::Identity;
use crate::jwks::JwksCache;
use crate::token_error::TokenError;

/// Longest token accepted, in bytes (Cognito's are 1–2 KiB).
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Longest `kid` accepted, in bytes.
const MAX_KID_LEN: usize = 256;

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The caller.
    pub identity: Identity,
    /// Whether it was an access or an id token.
    pub token_use: TokenUse,
    /// The token's `exp`, in seconds since the Unix epoch.
    pub expires_at: i64,
}

/// Verifies Cognito tokens of one user pool and app client; cheap to clone and share.
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    client_id: String,
    validation: Validation,
    jwks: JwksCache,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.inner.validation.iss)
            .field("client_id", &self.inner.client_id)
            .field("jwks_url", &self.inner.jwks.url())
            .finish()
    }
}

impl JwtVerifier {
    /// A verifier for `config`; keys are fetched on first use.
    pub fn new(config: CognitoConfig) -> Result<Self, TokenError> {
        if let Some(problem) = config.problem() {
            return Err(TokenError::InvalidConfig(problem.to_owned()));
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = vec![Algorithm::RS256];
        validation.leeway = config.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // `aud` only exists on id tokens; it is checked with `token_use` (see `CognitoClaims`).
        validation.validate_aud = false;
        validation.set_issuer(&[config.issuer()]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let jwks = JwksCache::new(
            config.jwks_url(),
            config.min_refresh_interval,
            config.keys_max_age,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                client_id: config.client_id,
                validation,
                jwks,
            }),
        })
    }

    /// Checks `token` (the bearer token, without `Bearer `) and reads the caller out of it.
    pub async fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        let kid = signing_key_id(token)?;
        let key = self.inner.jwks.key(&kid).await?;
        let data = jsonwebtoken::decode::<CognitoClaims>(token, &key, &self.inner.validation)
            .map_err(|e| refusal(e.kind()))?;
        let expires_at = data.claims.exp;
        let (identity, token_use) = data.claims.into_identity(&self.inner.client_id)?;
        Ok(Verified {
            identity,
            token_use,
            expires_at,
        })
    }
}

/// Reads the header of a compact JWS: only RS256 is accepted; returns the `kid`.
fn signing_key_id(token: &str) -> Result<String, TokenError> {
    #[derive(serde::Deserialize)]
    struct Header {
        alg: String,
        kid: Option<String>,
        /// Extensions the token says must be understood; Cognito uses none, so none are.
        crit: Option<serde::de::IgnoredAny>,
    }

    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::Malformed)?;
    let header: Header = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    if header.alg != "RS256" {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    if header.crit.is_some() {
        return Err(TokenError::Malformed);
    }
    let kid = header.kid.ok_or(TokenError::UnknownKey)?;
    if kid.is_empty() || kid.len() > MAX_KID_LEN {
        return Err(TokenError::UnknownKey);
    }
    Ok(kid)
}

/// The refusal for a failed `jsonwebtoken::decode`.
fn refusal(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            TokenError::UnsupportedAlgorithm
        }
        _ => TokenError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_with_header(header: &str) -> String {
        format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(header))
    }

    #[test]
    fn reads_the_kid_of_rs256_tokens_only() {
        let kid = signing_key_id(&token_with_header(r#"{"alg":"RS256","kid":"k1"}"#));
        assert_eq!(kid, Ok("k1".to_owned()));
        for alg in ["none", "HS256", "RS512", "PS256", "ES256", "rs256"] {
            let header = format!(r#"{{"alg":"{alg}","kid":"k1"}}"#);
            assert_eq!(
                signing_key_id(&token_with_header(&header)),
                Err(TokenError::UnsupportedAlgorithm),
                "{alg}"
            );
        }
    }

    #[test]
    fn refuses_headers_it_cannot_trust() {
        let cases = [
            (r#"{"alg":"RS256"}"#, TokenError::UnknownKey),
            (r#"{"alg":"RS256","kid":""}"#, TokenError::UnknownKey),
            (
                r#"{"alg":"RS256","kid":"k","crit":["b64"]}"#,
                TokenError::Malformed,
            ),
            (r#"{"kid":"k"}"#, TokenError::Malformed),
            (r#"{"alg":256,"kid":"k"}"#, TokenError::Malformed),
            ("not json", TokenError::Malformed),
        ];
        for (header, refusal) in cases {
            assert_eq!(
                signing_key_id(&token_with_header(header)),
                Err(refusal),
                "{header}"
            );
        }
        assert_eq!(signing_key_id("a.b"), Err(TokenError::Malformed));
        assert_eq!(signing_key_id("a.b.c.d"), Err(TokenError::Malformed));
        let huge = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(signing_key_id(&huge), Err(TokenError::Malformed));
    }

    #[test]
    fn maps_library_refusals_to_token_errors() {
        assert_eq!(refusal(&ErrorKind::ExpiredSignature), TokenError::Expired);
        assert_eq!(
            refusal(&ErrorKind::ImmatureSignature),
            TokenError::NotYetValid
        );
        assert_eq!(refusal(&ErrorKind::InvalidIssuer), TokenError::WrongIssuer);
        assert_eq!(
            refusal(&ErrorKind::InvalidSignature),
            TokenError::BadSignature
        );
        assert_eq!(
            refusal(&ErrorKind::MissingRequiredClaim("exp".into())),
            TokenError::Malformed
        );
    }
}
