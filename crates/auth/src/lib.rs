//! Who is calling: Cognito token verification, the identity the gateway passes to subgraphs,
//! role checks, and a local dev issuer.
//!
//! The gateway verifies the caller's Cognito JWT with a [`JwtVerifier`] (RS256 against the
//! user pool's JWKS; issuer, times, `token_use` and app client checked), strips any
//! client-supplied copy of [`IDENTITY_HEADER`], and sets it to [`Identity::to_header_value`].
//! A subgraph reads it with [`Identity::from_headers`] (a request without it is anonymous),
//! and may verify the original token too, for defence in depth. With a shared secret the
//! header is signed ([`IdentitySigner`]) and subgraphs refuse one without a valid signature. [`DevIssuer`] is a real local
//! issuer of Cognito-shaped tokens for development and tests. This crate holds no business
//! rules beyond the three roles.
//!
//! Layout: `identity` (the caller and its header), `access` (role checks and their error),
//! `config` (which user pool), `claims` (Cognito token claims), `jwks` (the cached keys),
//! `jwt` (the verifier), `signed` (identities signed by the gateway), `token_error` (why a
//! token was refused), `dev_issuer`.

mod access;
mod claims;
mod config;
pub mod dev_issuer;
mod identity;
mod jwks;
mod jwt;
mod signed;
mod token_error;

pub use access::{AuthError, require, require_staff};
pub use claims::TokenUse;
pub use config::CognitoConfig;
pub use dev_issuer::{DevIssuer, DevIssuerError, MintRequest, MintResponse};
pub use identity::{Group, IDENTITY_HEADER, Identity};
pub use jwt::{JwtVerifier, Verified};
pub use signed::{IdentitySigner, LEEWAY_SECS, MIN_SECRET_LEN, WeakSecret};
pub use token_error::TokenError;
