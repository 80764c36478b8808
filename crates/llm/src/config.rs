//! Where the OpenAI-compatible API is and how long to wait for it.

use std::time::Duration;

use secrecy::SecretString;

/// The API base URL used when `OPENAI_BASE_URL` is unset.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// The model used when `OPENAI_MODEL` is unset.
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";

/// Settings of the OpenAI-compatible adapter; `Debug` never shows the key.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// The API base URL, up to and including `/v1`.
    pub base_url: String,
    /// The bearer API key.
    pub api_key: SecretString,
    /// The model to ask.
    pub model: String,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long until a streamed answer starts, or a non-streamed answer is complete.
    pub request_timeout: Duration,
    /// How long a streamed answer may pause between chunks.
    pub idle_timeout: Duration,
}

impl LlmConfig {
    /// Settings for `model` at `base_url` with `api_key` and default timeouts.
    pub fn new(
        base_url: impl Into<String>,
        api_key: impl Into<String>,
        model: impl Into<String>,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: SecretString::from(api_key.into()),
            model: model.into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30),
        }
    }

    /// Settings from `OPENAI_API_KEY`, `OPENAI_BASE_URL` and `OPENAI_MODEL`; `None` when no
    /// key is set (then the local answerer is used).
    pub fn from_env() -> Option<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Settings from a variable lookup (what [`LlmConfig::from_env`] reads).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let set = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let api_key = set("OPENAI_API_KEY")?;
        let base_url = set("OPENAI_BASE_URL").unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let model = set("OPENAI_MODEL").unwrap_or_else(|| DEFAULT_MODEL.to_owned());
        Some(Self::new(
            base_url.trim().trim_end_matches('/'),
            api_key.trim(),
            model.trim(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    #[test]
    fn no_key_means_no_remote_model() {
        assert!(LlmConfig::from_lookup(|_| None).is_none());
        assert!(
            LlmConfig::from_lookup(|name| (name == "OPENAI_API_KEY").then(|| " ".into())).is_none()
        );
    }

    #[test]
    fn reads_key_base_url_and_model_with_defaults() {
        let config =
            LlmConfig::from_lookup(|name| (name == "OPENAI_API_KEY").then(|| "sk-test".into()))
                .unwrap();
        assert_eq!(config.base_url, DEFAULT_BASE_URL);
        assert_eq!(config.model, DEFAULT_MODEL);
        assert_eq!(config.api_key.expose_secret(), "sk-test");

        let config = LlmConfig::from_lookup(|name| match name {
            "OPENAI_API_KEY" => Some("sk-test".into()),
            "OPENAI_BASE_URL" => Some("http://127.0.0.1:4012/v1/".into()),
            "OPENAI_MODEL" => Some("qwen2.5".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.base_url, "http://127.0.0.1:4012/v1");
        assert_eq!(config.model, "qwen2.5");
    }

    #[test]
    fn debug_hides_the_key() {
        let config = LlmConfig::new(DEFAULT_BASE_URL, "sk-very-secret", DEFAULT_MODEL);
        assert!(!format!("{config:?}").contains("sk-very-secret"));
    }
}
