//! Role checks on a caller, and the error a refused request gets.

use crate::identity::Identity;

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
    /// The identity header lacks the gateway's valid signature.
    #[error("identity header not signed by the gateway")]
    Unsigned,
}

impl AuthError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated | Self::Malformed | Self::Unsigned => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
        }
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
