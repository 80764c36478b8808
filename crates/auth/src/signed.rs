//! Identities signed by the gateway. With a secret shared by the gateway and the subgraphs
//! (`IDENTITY_SECRET`), the identity header carries an HMAC-SHA256 of its value after a `.`,
//! so a request that reaches a subgraph around the gateway cannot say who the caller is.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::access::AuthError;
use crate::identity::{IDENTITY_HEADER, Identity};

/// Fewest bytes a signing secret may have (the hash's own length).
pub const MIN_SECRET_LEN: usize = 32;

/// Signs identities (the gateway) and verifies them (the subgraphs) with one shared secret.
#[derive(Clone)]
pub struct IdentitySigner {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for IdentitySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentitySigner(..)")
    }
}

/// Why a signing secret was refused.
#[derive(Debug, thiserror::Error)]
#[error("the identity secret must have at least {MIN_SECRET_LEN} bytes")]
pub struct WeakSecret;

impl IdentitySigner {
    /// A signer over `secret` (at least [`MIN_SECRET_LEN`] bytes).
    pub fn new(secret: &[u8]) -> Result<Self, WeakSecret> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(WeakSecret);
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| WeakSecret)?;
        Ok(Self { mac })
    }

    /// The signed header value of `identity`: its [`Identity::to_header_value`], a `.`, and
    /// the HMAC of that value (base64url).
    pub fn header_value(&self, identity: &Identity) -> String {
        let value = identity.to_header_value();
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{value}.{tag}")
    }

    /// Reads a signed identity header: `Ok(None)` when absent (anonymous), an error when
    /// unsigned, signed with another secret, altered or malformed.
    pub fn verify(&self, headers: &http::HeaderMap) -> Result<Option<Identity>, AuthError> {
        let Some(value) = headers.get(IDENTITY_HEADER) else {
            return Ok(None);
        };
        let raw = value.to_str().map_err(|_| AuthError::Malformed)?;
        let (value, tag) = raw.rsplit_once('.').ok_or(AuthError::Unsigned)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| AuthError::Unsigned)?;
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&tag).map_err(|_| AuthError::Unsigned)?;
        Identity::from_header_value(value.as_bytes()).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(IDENTITY_HEADER, value.parse().unwrap());
        h
    }

    #[test]
    fn a_signed_identity_reads_back_and_nothing_else_does() {
        let signer = IdentitySigner::new(&[7; 32]).unwrap();
        let staff = Identity::staff("lee");
        let signed = signer.header_value(&staff);
        assert_eq!(
            signer.verify(&headers(&signed)).unwrap(),
            Some(staff.clone())
        );
        assert_eq!(signer.verify(&http::HeaderMap::new()).unwrap(), None);

        // Unsigned, signed with another secret, or another identity under this signature.
        let other = IdentitySigner::new(&[8; 32]).unwrap();
        let (value, tag) = signed.rsplit_once('.').unwrap();
        let forged = format!("{}.{tag}", Identity::staff("mallory").to_header_value());
        for bad in [
            staff.to_header_value(),
            other.header_value(&staff),
            forged,
            format!("{value}.not-base64!"),
            format!("{value}."),
        ] {
            let err = signer.verify(&headers(&bad)).unwrap_err();
            assert_eq!(err, AuthError::Unsigned, "{bad}");
            assert_eq!(err.code(), "UNAUTHENTICATED");
        }
        assert!(IdentitySigner::new(&[1; 31]).is_err(), "too short a secret");
    }
}
