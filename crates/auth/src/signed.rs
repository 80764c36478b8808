//! Identities signed by the gateway. With a secret shared by the gateway and the subgraphs
//! (`IDENTITY_SECRET`), the identity header carries, after its value, the time it stops being
//! valid (the caller's token's `exp`) and an HMAC-SHA256 of both, so a request that reaches a
//! subgraph around the gateway cannot say who the caller is, and a header seen once is of no
//! use after its token has expired.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::access::AuthError;
use crate::identity::{IDENTITY_HEADER, Identity};

/// Fewest bytes a signing secret may have (the hash's own length).
pub const MIN_SECRET_LEN: usize = 32;

/// Seconds a signed identity is still taken after its `expires_at` (clock skew between the
/// gateway and a subgraph, as the gateway allows for tokens).
pub const LEEWAY_SECS: i64 = 30;

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

    /// The signed header value of `identity`, valid until `expires_at` (seconds since the
    /// Unix epoch): its [`Identity::to_header_value`], `.`, `expires_at`, `.`, and the HMAC of
    /// what comes before the last `.` (base64url).
    pub fn header_value(&self, identity: &Identity, expires_at: i64) -> String {
        let signed = format!("{}.{expires_at}", identity.to_header_value());
        let mut mac = self.mac.clone();
        mac.update(signed.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signed}.{tag}")
    }

    /// Reads a signed identity header at `now` (seconds since the Unix epoch): `Ok(None)`
    /// when absent (anonymous), an error when unsigned, signed with another secret, altered,
    /// expired (past its `expires_at` by more than [`LEEWAY_SECS`]) or malformed.
    pub fn verify(
        &self,
        headers: &http::HeaderMap,
        now: i64,
    ) -> Result<Option<Identity>, AuthError> {
        let Some(value) = headers.get(IDENTITY_HEADER) else {
            return Ok(None);
        };
        let raw = value.to_str().map_err(|_| AuthError::Malformed)?;
        let (signed, tag) = raw.rsplit_once('.').ok_or(AuthError::Unsigned)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| AuthError::Unsigned)?;
        let mut mac = self.mac.clone();
        mac.update(signed.as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&tag).map_err(|_| AuthError::Unsigned)?;
        let (value, expires_at) = signed.rsplit_once('.').ok_or(AuthError::Malformed)?;
        let expires_at: i64 = expires_at.parse().map_err(|_| AuthError::Malformed)?;
        if now > expires_at.saturating_add(LEEWAY_SECS) {
            return Err(AuthError::Unsigned);
        }
        Identity::from_header_value(value.as_bytes()).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::tests::headers;

    #[test]
    fn a_signed_identity_reads_back_until_it_expires_and_nothing_else_does() {
        let signer = IdentitySigner::new(&[7; 32]).unwrap();
        let staff = Identity::staff("lee");
        let (now, exp) = (1_900_000_000, 1_900_000_600);
        let signed = signer.header_value(&staff, exp);
        let verify = |value: &str, at: i64| signer.verify(&headers(value), at);
        assert_eq!(verify(&signed, now).unwrap(), Some(staff.clone()));
        assert_eq!(
            verify(&signed, exp + LEEWAY_SECS).unwrap(),
            Some(staff.clone())
        );
        assert_eq!(signer.verify(&http::HeaderMap::new(), now).unwrap(), None);

        // Expired; unsigned; signed with another secret; another identity or a later expiry
        // under this signature.
        let other = IdentitySigner::new(&[8; 32]).unwrap();
        let (signed_part, tag) = signed.rsplit_once('.').unwrap();
        let mallory = Identity::staff("mallory").to_header_value();
        let later = signed_part.replace(&exp.to_string(), &(exp + 86_400).to_string());
        for (bad, at) in [
            (signed.clone(), exp + LEEWAY_SECS + 1),
            (staff.to_header_value(), now),
            (other.header_value(&staff, exp), now),
            (format!("{mallory}.{exp}.{tag}"), now),
            (format!("{later}.{tag}"), now),
            (format!("{signed_part}.not-base64!"), now),
            (format!("{signed_part}."), now),
        ] {
            let err = verify(&bad, at).unwrap_err();
            assert_eq!(err, AuthError::Unsigned, "{bad}");
            assert_eq!(err.code(), "UNAUTHENTICATED");
        }
        assert!(IdentitySigner::new(&[1; 31]).is_err(), "too short a secret");
    }
}
