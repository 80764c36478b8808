//! The dev issuer's RSA signing keys: the current one signs, the previous one is still published.

use std::sync::Arc;

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use serde::Serialize;

use super::DevIssuerError;

/// RSA modulus size, as Cognito uses.
const RSA_BITS: usize = 2048;

/// One RSA-2048 key pair with its `kid` (the RFC 7638 thumbprint) and public JWK.
pub(crate) struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Jwk,
}

impl SigningKey {
    /// A fresh key pair (CPU-heavy: runs on the blocking pool).
    pub(crate) async fn generate() -> Result<Self, DevIssuerError> {
        tokio::task::spawn_blocking(Self::generate_now)
            .await
            .map_err(|e| DevIssuerError::KeyGeneration(e.to_string()))?
    }

    fn generate_now() -> Result<Self, DevIssuerError> {
        let failed = |e: &dyn std::fmt::Display| DevIssuerError::KeyGeneration(e.to_string());
        let private =
            RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS).map_err(|e| failed(&e))?;
        let der = private.to_pkcs1_der().map_err(|e| failed(&e))?;
        let encoding = EncodingKey::from_rsa_der(der.as_bytes());
        let mut jwk =
            Jwk::from_encoding_key(&encoding, Algorithm::RS256).map_err(|e| failed(&e))?;
        let kid = jwk.thumbprint(ThumbprintHash::SHA256);
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(Self { kid, encoding, jwk })
    }

    /// The key id tokens signed with this key carry.
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs `claims` as an RS256 JWT whose header is `{"alg":"RS256","kid":...}`, as Cognito's.
    pub(crate) fn sign(&self, claims: &impl Serialize) -> Result<String, DevIssuerError> {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = None;
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| DevIssuerError::Signing(e.to_string()))
    }
}

/// The keys in use: the current one signs; the previous one stays published after a rotation.
pub(crate) struct KeyRing {
    current: Arc<SigningKey>,
    previous: Option<Arc<SigningKey>>,
}

impl KeyRing {
    /// A ring with one key.
    pub(crate) fn new(key: SigningKey) -> Self {
        Self {
            current: Arc::new(key),
            previous: None,
        }
    }

    /// The key that signs now.
    pub(crate) fn current(&self) -> Arc<SigningKey> {
        self.current.clone()
    }

    /// Makes `key` current and keeps the current one published; older keys are dropped.
    pub(crate) fn rotate(&mut self, key: SigningKey) {
        let old = std::mem::replace(&mut self.current, Arc::new(key));
        self.previous = Some(old);
    }

    /// The published public keys.
    pub(crate) fn jwks(&self) -> JwkSet {
        let keys = std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .map(|key| key.jwk.clone())
            .collect();
        JwkSet { keys }
    }
}
