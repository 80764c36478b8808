//! The claims of a Cognito token, shared by the verifier (reading) and the dev issuer (writing).

use serde::{Deserialize, Serialize};

use crate::identity::{Group, Identity, MAX_SUB_LEN};
use crate::token_error::TokenError;

/// Longest username accepted, in bytes (Cognito allows 128 characters).
const MAX_USERNAME_LEN: usize = 512;

/// Which kind of Cognito token it is (the `token_use` claim).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenUse {
    /// An access token: carries `client_id` and `username`.
    #[default]
    Access,
    /// An id token: carries `aud` and `cognito:username`.
    Id,
}

impl TokenUse {
    /// The `token_use` claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Id => "id",
        }
    }
}

/// One audience or several, as RFC 7519 allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, client_id: &str) -> bool {
        match self {
            Self::One(aud) => aud == client_id,
            Self::Many(auds) => auds.iter().any(|aud| aud == client_id),
        }
    }
}

/// The claims of a Cognito access or id token that matter here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CognitoClaims {
    pub sub: String,
    pub iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_use: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(
        rename = "cognito:username",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cognito_username: Option<String>,
    #[serde(
        rename = "cognito:groups",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub exp: i64,
}

impl CognitoClaims {
    /// Checks `token_use` and the app client, and reads the caller (signature, issuer and times
    /// are already checked).
    pub(crate) fn into_identity(self, client_id: &str) -> Result<(Identity, TokenUse), TokenError> {
        let (token_use, username) = match self.token_use.as_deref() {
            Some("access") => {
                if self.client_id.as_deref() != Some(client_id) {
                    return Err(TokenError::WrongAudience);
                }
                (TokenUse::Access, self.username)
            }
            Some("id") => {
                if !self.aud.is_some_and(|aud| aud.contains(client_id)) {
                    return Err(TokenError::WrongAudience);
                }
                (TokenUse::Id, self.cognito_username)
            }
            _ => return Err(TokenError::WrongTokenUse),
        };
        let username = username.ok_or(TokenError::Malformed)?;
        if self.sub.is_empty()
            || self.sub.len() > MAX_SUB_LEN
            || username.is_empty()
            || username.len() > MAX_USERNAME_LEN
        {
            return Err(TokenError::Malformed);
        }
        let mut groups = Vec::with_capacity(self.groups.len().min(3));
        for group in self
            .groups
            .iter()
            .filter_map(|name| Group::from_cognito(name))
        {
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        let identity = Identity {
            sub: self.sub,
            username,
            groups,
        };
        Ok((identity, token_use))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(token_use: &str) -> CognitoClaims {
        CognitoClaims {
            sub: "s-1".into(),
            iss: "https://issuer".into(),
            token_use: Some(token_use.into()),
            client_id: Some("app".into()),
            aud: Some(Audience::Many(vec!["other".into(), "app".into()])),
            username: Some("kim".into()),
            cognito_username: Some("kim-id".into()),
            groups: vec!["staff".into(), "bakers".into(), "staff".into()],
            scope: None,
            jti: None,
            auth_time: None,
            iat: None,
            nbf: None,
            exp: 0,
        }
    }

    #[test]
    fn reads_the_username_claim_that_fits_the_token_use() {
        let (access, token_use) = claims("access").into_identity("app").unwrap();
        assert_eq!(token_use, TokenUse::Access);
        assert_eq!(access.username, "kim");
        assert_eq!(access.groups, vec![Group::Staff]);
        let (id, token_use) = claims("id").into_identity("app").unwrap();
        assert_eq!(token_use, TokenUse::Id);
        assert_eq!(id.username, "kim-id");
    }

    #[test]
    fn refuses_other_clients_and_token_uses() {
        assert_eq!(
            claims("access").into_identity("nope"),
            Err(TokenError::WrongAudience)
        );
        assert_eq!(
            claims("id").into_identity("nope"),
            Err(TokenError::WrongAudience)
        );
        assert_eq!(
            claims("refresh").into_identity("app"),
            Err(TokenError::WrongTokenUse)
        );
        let mut no_name = claims("access");
        no_name.username = None;
        assert_eq!(no_name.into_identity("app"), Err(TokenError::Malformed));
    }
}
