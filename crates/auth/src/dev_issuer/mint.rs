//! What a token request asks for, and the Cognito-shaped claims the dev issuer signs for it.

use serde::{Deserialize, Serialize};

use super::DevIssuerError;
use crate::claims::{Audience, CognitoClaims, TokenUse};
use crate::identity::Group;

/// Longest token lifetime the dev issuer grants (Cognito's maximum for access and id tokens).
pub const MAX_TTL_SECS: u64 = 24 * 60 * 60;
/// Token lifetime when a request names none.
pub const DEFAULT_TTL_SECS: u64 = 60 * 60;
/// Longest username accepted (Cognito's limit).
const MAX_USERNAME_CHARS: usize = 128;
/// Most groups one token may carry.
const MAX_GROUPS: usize = 25;

/// A request for a token: the body of `POST /token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintRequest {
    /// The user's name; the `sub` is derived from it (see [`dev_user_sub`]).
    pub username: String,
    /// Cognito group names (`customers`, `staff`, `admins`; others are carried but mean nothing here).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Access token (default) or id token.
    #[serde(default)]
    pub token_use: TokenUse,
    /// Lifetime in seconds, 1 to 86400 (default 3600).
    #[serde(default = "default_ttl")]
    pub ttl_secs: u64,
}

fn default_ttl() -> u64 {
    DEFAULT_TTL_SECS
}

impl MintRequest {
    /// An access token for `username` in `groups`, valid for an hour.
    pub fn access(username: impl Into<String>, groups: &[Group]) -> Self {
        Self {
            username: username.into(),
            groups: groups.iter().map(|g| g.as_str().to_owned()).collect(),
            token_use: TokenUse::Access,
            ttl_secs: DEFAULT_TTL_SECS,
        }
    }

    /// An id token for `username` in `groups`, valid for an hour.
    pub fn id(username: impl Into<String>, groups: &[Group]) -> Self {
        Self {
            token_use: TokenUse::Id,
            ..Self::access(username, groups)
        }
    }

    fn problem(&self) -> Option<&'static str> {
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.chars().count() <= MAX_USERNAME_CHARS
                && !s.chars().any(char::is_control)
        };
        if !name_ok(&self.username) {
            return Some("username must be 1 to 128 characters without control characters");
        }
        if self.groups.len() > MAX_GROUPS || !self.groups.iter().all(|g| name_ok(g)) {
            return Some("groups must be at most 25 names of 1 to 128 characters");
        }
        if !(1..=MAX_TTL_SECS).contains(&self.ttl_secs) {
            return Some("ttl_secs must be between 1 and 86400");
        }
        None
    }
}

/// The answer to `POST /token`, shaped like Cognito's token endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MintResponse {
    /// The access token, when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// The id token, when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
}

impl MintResponse {
    pub(crate) fn new(token: String, request: &MintRequest) -> Self {
        let (access_token, id_token) = match request.token_use {
            TokenUse::Access => (Some(token), None),
            TokenUse::Id => (None, Some(token)),
        };
        Self {
            access_token,
            id_token,
            token_type: "Bearer".to_owned(),
            expires_in: request.ttl_secs,
        }
    }
}

/// The stable `sub` the dev issuer gives `username`: a UUID v5 of it, the same on every run.
pub fn dev_user_sub(username: &str) -> String {
    let name = format!("bloody-sweet-dev-user:{username}");
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
}

/// The claims Cognito would put in such a token, issued at `now` (seconds since the epoch).
pub(crate) fn cognito_claims(
    issuer: &str,
    client_id: &str,
    request: &MintRequest,
    now: i64,
) -> Result<CognitoClaims, DevIssuerError> {
    if let Some(problem) = request.problem() {
        return Err(DevIssuerError::BadRequest(problem));
    }
    let ttl = i64::try_from(request.ttl_secs).unwrap_or(i64::MAX);
    let (client, aud, username, cognito_username, scope) = match request.token_use {
        TokenUse::Access => (
            Some(client_id.to_owned()),
            None,
            Some(request.username.clone()),
            None,
            Some("aws.cognito.signin.user.admin".to_owned()),
        ),
        TokenUse::Id => (
            None,
            Some(Audience::One(client_id.to_owned())),
            None,
            Some(request.username.clone()),
            None,
        ),
    };
    Ok(CognitoClaims {
        sub: dev_user_sub(&request.username),
        iss: issuer.to_owned(),
        token_use: Some(request.token_use.as_str().to_owned()),
        client_id: client,
        aud,
        username,
        cognito_username,
        groups: request.groups.clone(),
        scope,
        jti: Some(uuid::Uuid::new_v4().to_string()),
        auth_time: Some(now),
        iat: Some(now),
        nbf: Some(now),
        exp: now.saturating_add(ttl),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subs_are_stable_per_username() {
        assert_eq!(dev_user_sub("kim"), dev_user_sub("kim"));
        assert_ne!(dev_user_sub("kim"), dev_user_sub("lee"));
        assert!(uuid::Uuid::parse_str(&dev_user_sub("kim")).is_ok());
    }

    #[test]
    fn shapes_claims_like_cognito() {
        let access = cognito_claims(
            "iss",
            "app",
            &MintRequest::access("kim", &[Group::Staff]),
            100,
        )
        .unwrap();
        assert_eq!(access.client_id.as_deref(), Some("app"));
        assert_eq!(access.username.as_deref(), Some("kim"));
        assert_eq!(access.aud, None);
        assert_eq!(access.groups, vec!["staff".to_owned()]);
        assert_eq!(access.exp, 100 + 3600);
        let id = cognito_claims("iss", "app", &MintRequest::id("kim", &[]), 100).unwrap();
        assert_eq!(id.aud, Some(Audience::One("app".into())));
        assert_eq!(id.cognito_username.as_deref(), Some("kim"));
        assert_eq!(id.client_id, None);
    }

    #[test]
    fn refuses_bad_requests() {
        let mut request = MintRequest::access("", &[]);
        assert!(cognito_claims("i", "c", &request, 0).is_err());
        request.username = "kim".into();
        request.ttl_secs = 0;
        assert!(cognito_claims("i", "c", &request, 0).is_err());
        request.ttl_secs = MAX_TTL_SECS + 1;
        assert!(cognito_claims("i", "c", &request, 0).is_err());
        let body = r#"{"username":"kim","admin":true}"#;
        assert!(serde_json::from_str::<MintRequest>(body).is_err());
    }
}
