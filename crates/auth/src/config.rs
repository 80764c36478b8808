//! Which Cognito user pool and app client tokens must come from.

use std::time::Duration;

/// Where tokens come from and how strictly they are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CognitoConfig {
    /// AWS region of the user pool, e.g. `ap-northeast-2`.
    pub region: String,
    /// The user pool id, e.g. `ap-northeast-2_AbCdEf123`.
    pub user_pool_id: String,
    /// The app client id tokens must be issued for (`client_id` of access tokens, `aud` of id tokens).
    pub client_id: String,
    /// Overrides the issuer derived from region and pool (the dev issuer uses its base URL).
    pub issuer: Option<String>,
    /// Overrides the JWKS URL derived from the issuer.
    pub jwks_url: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// Shortest time between two JWKS fetches (a token with an unknown `kid` triggers one).
    pub min_refresh_interval: Duration,
    /// How long fetched keys are trusted before the JWKS is fetched again, so a key the pool
    /// removed stops verifying within this time.
    pub keys_max_age: Duration,
}

impl CognitoConfig {
    /// Default clock skew tolerated on `exp` and `nbf`.
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
    /// Default shortest time between two JWKS fetches.
    pub const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
    /// Default time fetched keys are trusted before they are fetched again.
    pub const DEFAULT_KEYS_MAX_AGE: Duration = Duration::from_secs(300);

    /// A Cognito user pool in `region` with app client `client_id`, default leeway and refresh interval.
    pub fn new(
        region: impl Into<String>,
        user_pool_id: impl Into<String>,
        client_id: impl Into<String>,
    ) -> Self {
        Self {
            region: region.into(),
            user_pool_id: user_pool_id.into(),
            client_id: client_id.into(),
            issuer: None,
            jwks_url: None,
            leeway: Self::DEFAULT_LEEWAY,
            min_refresh_interval: Self::DEFAULT_MIN_REFRESH_INTERVAL,
            keys_max_age: Self::DEFAULT_KEYS_MAX_AGE,
        }
    }

    /// The local dev issuer at `issuer_base_url` (its issuer; keys at `/.well-known/jwks.json`).
    pub fn dev(issuer_base_url: &str, client_id: &str) -> Self {
        let base = issuer_base_url.trim_end_matches('/');
        Self {
            issuer: Some(base.to_owned()),
            jwks_url: Some(format!("{base}/.well-known/jwks.json")),
            ..Self::new("local", "dev", client_id)
        }
    }

    /// Reads `COGNITO_REGION`, `COGNITO_USER_POOL_ID` and `COGNITO_CLIENT_ID`; `None` unless all are set.
    pub fn from_env() -> Option<Self> {
        let read = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        Some(Self::new(
            read("COGNITO_REGION")?,
            read("COGNITO_USER_POOL_ID")?,
            read("COGNITO_CLIENT_ID")?,
        ))
    }

    /// The `iss` every accepted token carries.
    pub fn issuer(&self) -> String {
        match &self.issuer {
            Some(issuer) => issuer.clone(),
            None => format!(
                "https://cognito-idp.{}.amazonaws.com/{}",
                self.region, self.user_pool_id
            ),
        }
    }

    /// Where the signing keys are published.
    pub fn jwks_url(&self) -> String {
        match &self.jwks_url {
            Some(url) => url.clone(),
            None => format!("{}/.well-known/jwks.json", self.issuer()),
        }
    }

    /// Why this configuration cannot be used, if it cannot.
    pub(crate) fn problem(&self) -> Option<&'static str> {
        let is_id_part = |s: &str| {
            !s.is_empty()
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !is_id_part(&self.client_id) {
            return Some("the client id is empty or has unexpected characters");
        }
        if self.issuer.is_none() && !(is_id_part(&self.region) && is_id_part(&self.user_pool_id)) {
            return Some("the region or user pool id is empty or has unexpected characters");
        }
        if self.issuer.as_deref().is_some_and(str::is_empty) {
            return Some("the issuer override is empty");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_cognito_urls() {
        let config = CognitoConfig::new("ap-northeast-2", "ap-northeast-2_Abc", "client1");
        assert_eq!(
            config.issuer(),
            "https://cognito-idp.ap-northeast-2.amazonaws.com/ap-northeast-2_Abc"
        );
        assert_eq!(
            config.jwks_url(),
            "https://cognito-idp.ap-northeast-2.amazonaws.com/ap-northeast-2_Abc/.well-known/jwks.json"
        );
        assert_eq!(config.leeway, Duration::from_secs(30));
        assert_eq!(config.problem(), None);
    }

    #[test]
    fn points_at_the_dev_issuer() {
        let config = CognitoConfig::dev("http://127.0.0.1:4011/", "dev-client");
        assert_eq!(config.issuer(), "http://127.0.0.1:4011");
        assert_eq!(
            config.jwks_url(),
            "http://127.0.0.1:4011/.well-known/jwks.json"
        );
        assert_eq!(config.problem(), None);
    }

    #[test]
    fn refuses_unusable_settings() {
        assert!(CognitoConfig::new("r", "p", "").problem().is_some());
        assert!(CognitoConfig::new("r/..", "p", "c").problem().is_some());
        assert!(CognitoConfig::new("r", "p?x=1", "c").problem().is_some());
    }
}
