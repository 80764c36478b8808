//! Who is calling: the identity the gateway verified and passes to subgraphs, and role checks.
//!
//! The gateway validates the Cognito JWT, strips any client-supplied copy of
//! [`IDENTITY_HEADER`], and sets it to the base64url (no padding) JSON of an [`Identity`]. A
//! subgraph reads it with [`Identity::from_headers`]; a request without it is anonymous. This
//! crate never verifies tokens itself (that is the gateway's job) and holds no business rules
//! beyond the three roles.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// The header carrying the verified identity from the gateway to subgraphs.
pub const IDENTITY_HEADER: &str = "x-bloody-identity";

/// A Cognito group, which is the caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// App users who order.
    Customers,
    /// Shop staff who run the order board.
    Staff,
    /// Operators.
    Admins,
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Cognito `sub`: the stable user id.
    pub sub: String,
    /// Cognito `username`.
    pub username: String,
    /// Cognito groups the caller belongs to.
    #[serde(default)]
    pub groups: Vec<Group>,
}

/// Why a request was refused; `code()` is the GraphQL `extensions.code`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No (valid) identity: sign in first.
    #[error("authentication required")]
    Unauthenticated,
    /// Signed in, but not allowed to do this.
    #[error("not allowed: {0}")]
    Forbidden(&'static str),
    /// The identity header is present but malformed.
    #[error("malformed identity header")]
    Malformed,
}

impl AuthError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated | Self::Malformed => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
        }
    }
}

/// Longest identity header accepted, in bytes.
const MAX_HEADER_LEN: usize = 8 * 1024;

impl Identity {
    /// A customer (for tests and the local dev issuer).
    pub fn customer(sub: impl Into<String>) -> Self {
        let sub = sub.into();
        Self {
            username: sub.clone(),
            sub,
            groups: vec![Group::Customers],
        }
    }

    /// A staff member (for tests and the local dev issuer).
    pub fn staff(sub: impl Into<String>) -> Self {
        let sub = sub.into();
        Self {
            username: sub.clone(),
            sub,
            groups: vec![Group::Staff],
        }
    }

    /// Reads the identity header: `Ok(None)` when absent (anonymous), an error when malformed.
    pub fn from_headers(headers: &http::HeaderMap) -> Result<Option<Self>, AuthError> {
        let Some(value) = headers.get(IDENTITY_HEADER) else {
            return Ok(None);
        };
        let raw = value.as_bytes();
        if raw.len() > MAX_HEADER_LEN {
            return Err(AuthError::Malformed);
        }
        let json = URL_SAFE_NO_PAD
            .decode(raw)
            .map_err(|_| AuthError::Malformed)?;
        let identity: Identity = serde_json::from_slice(&json).map_err(|_| AuthError::Malformed)?;
        if identity.sub.is_empty() || identity.sub.len() > 256 {
            return Err(AuthError::Malformed);
        }
        Ok(Some(identity))
    }

    /// The header value that carries this identity.
    pub fn to_header_value(&self) -> String {
        // Serialising plain strings and enums cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Whether the caller is in `group`.
    pub fn is(&self, group: Group) -> bool {
        self.groups.contains(&group)
    }

    /// Staff or admins.
    pub fn is_staff(&self) -> bool {
        self.is(Group::Staff) || self.is(Group::Admins)
    }
}

/// Requires a signed-in caller.
pub fn require(identity: Option<&Identity>) -> Result<&Identity, AuthError> {
    identity.ok_or(AuthError::Unauthenticated)
}

/// Requires staff or admins.
pub fn require_staff(identity: Option<&Identity>) -> Result<&Identity, AuthError> {
    let identity = require(identity)?;
    if identity.is_staff() {
        Ok(identity)
    } else {
        Err(AuthError::Forbidden("staff only"))
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
    fn round_trips_through_the_header() {
        let me = Identity::staff("u-1");
        let read = Identity::from_headers(&headers(&me.to_header_value())).unwrap();
        assert_eq!(read, Some(me));
        assert_eq!(
            Identity::from_headers(&http::HeaderMap::new()).unwrap(),
            None
        );
    }

    #[test]
    fn refuses_malformed_headers() {
        for bad in ["not base64!", "e30", "eyJzdWIiOiIifQ"] {
            let err = Identity::from_headers(&headers(bad)).unwrap_err();
            assert_eq!(err.code(), "UNAUTHENTICATED", "{bad}");
        }
    }

    #[test]
    fn checks_roles() {
        let customer = Identity::customer("c");
        assert!(require(Some(&customer)).is_ok());
        assert_eq!(
            require_staff(Some(&customer)).unwrap_err().code(),
            "FORBIDDEN"
        );
        assert_eq!(require(None).unwrap_err().code(), "UNAUTHENTICATED");
        assert!(require_staff(Some(&Identity::staff("s"))).is_ok());
    }
}
