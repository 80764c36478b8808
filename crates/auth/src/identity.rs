//! The verified caller and how it travels from the gateway to subgraphs in [`IDENTITY_HEADER`].

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::access::AuthError;

/// The header carrying the verified identity from the gateway to subgraphs.
pub const IDENTITY_HEADER: &str = "x-bloody-identity";

/// Longest identity header accepted, in bytes.
const MAX_HEADER_LEN: usize = 8 * 1024;

/// Longest `sub` accepted, in bytes.
pub(crate) const MAX_SUB_LEN: usize = 256;

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

impl Group {
    /// The group named `name` in Cognito (`customers`, `staff`, `admins`), if it is one of ours.
    pub fn from_cognito(name: &str) -> Option<Self> {
        match name {
            "customers" => Some(Self::Customers),
            "staff" => Some(Self::Staff),
            "admins" => Some(Self::Admins),
            _ => None,
        }
    }

    /// The Cognito group name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customers => "customers",
            Self::Staff => "staff",
            Self::Admins => "admins",
        }
    }
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
        Self::from_header_value(value.as_bytes()).map(Some)
    }

    /// Reads an identity header's value (as [`Identity::to_header_value`] writes it).
    pub fn from_header_value(raw: &[u8]) -> Result<Self, AuthError> {
        if raw.len() > MAX_HEADER_LEN {
            return Err(AuthError::Malformed);
        }
        let json = URL_SAFE_NO_PAD
            .decode(raw)
            .map_err(|_| AuthError::Malformed)?;
        let identity: Identity = serde_json::from_slice(&json).map_err(|_| AuthError::Malformed)?;
        if identity.sub.is_empty() || identity.sub.len() > MAX_SUB_LEN {
            return Err(AuthError::Malformed);
        }
        Ok(identity)
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Headers holding `value` as the identity header.
    pub(crate) fn headers(value: &str) -> http::HeaderMap {
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
    fn names_groups_as_cognito_does() {
        for group in [Group::Customers, Group::Staff, Group::Admins] {
            assert_eq!(Group::from_cognito(group.as_str()), Some(group));
            let json = serde_json::to_string(&group).unwrap();
            assert_eq!(json, format!("\"{}\"", group.as_str()));
        }
        assert_eq!(Group::from_cognito("Staff"), None);
        assert_eq!(Group::from_cognito("bakers"), None);
    }
}
