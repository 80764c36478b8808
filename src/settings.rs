//! Typed configuration: defaults, then an optional TOML file, then environment variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The longest the saga's clock may be set to wait (payment timeout, refund retry).
const MAX_SAGA_WAIT_SECS: u64 = 7 * 24 * 60 * 60;
/// Highest `ORDER_MAX_OPEN_PER_CUSTOMER`.
const MAX_OPEN_ORDERS: u32 = 1_000;

/// Everything the platform reads at start. A missing production setting selects the
/// embedded adapter of that port.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Directory for embedded state (SQLite files); `BLOODY_SWEET_DATA_DIR`.
    pub data_dir: PathBuf,
    /// Postgres URL of the event store and read models; `DATABASE_URL`. Embedded SQLite when unset.
    pub database_url: Option<SecretString>,
    /// Kafka bootstrap servers; `KAFKA_BROKERS`. In-process bus when unset.
    pub kafka_brokers: Option<String>,
    /// Prefix of every topic name; `KAFKA_TOPIC_PREFIX`.
    pub kafka_topic_prefix: String,
    /// Partitions of the topics the relay creates; `KAFKA_PARTITIONS`.
    pub kafka_partitions: i32,
    /// Consumer-group session timeout in milliseconds; `KAFKA_SESSION_TIMEOUT_MS`.
    pub kafka_session_timeout_ms: u64,
    /// The longest the broker may hold a saga or command consumer's fetch, in milliseconds;
    /// `KAFKA_FETCH_WAIT_MS`.
    pub kafka_fetch_wait_ms: u64,
    /// Address of the gateway (GraphQL, GraphiQL, health, readiness, metrics);
    /// `BLOODY_SWEET_LISTEN`.
    pub listen: SocketAddr,
    /// Connections in the event store's pool; `DATABASE_MAX_CONNECTIONS`.
    pub database_max_connections: u32,
    /// The order subgraph's address; `ORDER_LISTEN`.
    pub order_listen: SocketAddr,
    /// The inventory subgraph's address; `INVENTORY_LISTEN`.
    pub inventory_listen: SocketAddr,
    /// The payment subgraph's address; `PAYMENT_LISTEN`.
    pub payment_listen: SocketAddr,
    /// The review subgraph's address; `REVIEW_LISTEN`.
    pub review_listen: SocketAddr,
    /// Toss Payments API; `TOSS_BASE_URL`. Unset: the real API when a secret key is set, else
    /// the embedded Toss test server.
    pub toss_base_url: Option<String>,
    /// Toss secret key; `TOSS_SECRET_KEY`. Unset: the embedded test server and its test key.
    pub toss_secret_key: Option<SecretString>,
    /// Secret the gateway signs the identity it passes to subgraphs with, and subgraphs verify
    /// it by (at least 32 bytes); `IDENTITY_SECRET`. Unset: the identity header is unsigned.
    pub identity_secret: Option<SecretString>,
    /// Address of the embedded Toss test server; `TOSS_TEST_LISTEN`.
    pub toss_test_listen: SocketAddr,
    /// Seconds a reserved order waits for payment; `PAYMENT_TIMEOUT_SECS`.
    pub payment_timeout_secs: u64,
    /// Seconds before the saga asks again for a refund Toss refused for now;
    /// `REFUND_RETRY_SECS`.
    pub refund_retry_secs: u64,
    /// Most orders one customer may have awaiting stock or payment at once;
    /// `ORDER_MAX_OPEN_PER_CUSTOMER`.
    pub order_max_open_per_customer: u32,
    /// Cognito user pool region; `COGNITO_REGION`. With the pool and client id it selects
    /// Cognito; unset: the local dev issuer.
    pub cognito_region: Option<String>,
    /// Cognito user pool id; `COGNITO_USER_POOL_ID`.
    pub cognito_user_pool_id: Option<String>,
    /// Cognito app client id; `COGNITO_CLIENT_ID`.
    pub cognito_client_id: Option<String>,
    /// Address of the local dev issuer (`up` serves it when Cognito is not configured; `token`
    /// asks it); `DEV_ISSUER_LISTEN`.
    pub dev_issuer_listen: SocketAddr,
    /// Largest estimated operation cost the gateway accepts; `GATEWAY_MAX_COST` (unset: the
    /// engine's default).
    pub gateway_max_cost: Option<u64>,
    /// Sustained requests per second from one anonymous IP; `GATEWAY_RATE_PER_IP` (unset: the
    /// gateway's default). Burst is twice this.
    pub gateway_rate_per_ip: Option<u32>,
    /// Whether identical subgraph queries in flight at once share one request;
    /// `GATEWAY_DEDUPE_SUBGRAPH_REQUESTS` (`true` or `false`).
    pub gateway_dedupe_subgraph_requests: bool,
    /// Load balancers whose `X-Forwarded-For` names the client, as comma-separated CIDRs;
    /// `GATEWAY_TRUSTED_PROXIES` (empty: nobody, the peer is the client).
    pub gateway_trusted_proxies: String,
    /// Redis URL of the chat streams; `REDIS_URL`. In-process streams when unset.
    pub redis_url: Option<SecretString>,
    /// MongoDB holding the review documents (production); `MONGODB_URI`, its path naming the
    /// database (`bloody_sweet` without one). The SQL read model serves them when unset.
    pub mongodb_uri: Option<SecretString>,
    /// The model service (gRPC) embedding reviews and queries; `MODEL_SERVICE_URL`. The model
    /// runs in-process (from `MODEL_DIR`) when unset.
    pub model_service_url: Option<String>,
    /// Address `bloody-sweet model` serves the model service on; `MODEL_LISTEN`.
    pub model_listen: SocketAddr,
    /// Chat workers answering in one process; `CHAT_WORKERS`.
    pub chat_workers: usize,
    /// Milliseconds between two embedding catch-ups; `EMBEDDING_CATCH_UP_MS`.
    pub embedding_catch_up_ms: u64,
}

/// The app client id of the local dev issuer's tokens.
pub const DEV_CLIENT_ID: &str = "bloody-sweet-dev";

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".data"),
            database_url: None,
            kafka_brokers: None,
            kafka_topic_prefix: String::new(),
            kafka_partitions: 6,
            kafka_session_timeout_ms: 10_000,
            kafka_fetch_wait_ms: bus::DEFAULT_PROMPT_FETCH_WAIT.as_millis() as u64,
            listen: SocketAddr::from(([127, 0, 0, 1], 4000)),
            database_max_connections: 16,
            order_listen: SocketAddr::from(([127, 0, 0, 1], 4001)),
            inventory_listen: SocketAddr::from(([127, 0, 0, 1], 4002)),
            payment_listen: SocketAddr::from(([127, 0, 0, 1], 4003)),
            review_listen: SocketAddr::from(([127, 0, 0, 1], 4004)),
            toss_base_url: None,
            toss_secret_key: None,
            identity_secret: None,
            toss_test_listen: SocketAddr::from(([127, 0, 0, 1], 4010)),
            payment_timeout_secs: 600,
            refund_retry_secs: 120,
            order_max_open_per_customer: 10,
            cognito_region: None,
            cognito_user_pool_id: None,
            cognito_client_id: None,
            dev_issuer_listen: SocketAddr::from(([127, 0, 0, 1], 4011)),
            gateway_max_cost: None,
            gateway_rate_per_ip: None,
            gateway_dedupe_subgraph_requests: true,
            gateway_trusted_proxies: String::new(),
            redis_url: None,
            mongodb_uri: None,
            model_service_url: None,
            model_listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            chat_workers: 2,
            embedding_catch_up_ms: 1_000,
        }
    }
}

/// Why the settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for these settings (unknown keys are refused).
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        source: toml::de::Error,
    },
    /// An environment variable holds an unusable value.
    #[error("invalid value for {name}: {reason}")]
    Env {
        /// The variable.
        name: &'static str,
        /// Why it was refused.
        reason: String,
    },
}

impl Settings {
    /// Loads defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_from(file, |name| std::env::var(name).ok())
    }

    /// Like [`Settings::load`], reading variables through `env` (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let mut settings = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| SettingsError::Parse {
                    path: path.to_owned(),
                    source,
                })?
            }
            None => Settings::default(),
        };
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = var("BLOODY_SWEET_DATA_DIR") {
            settings.data_dir = v.into();
        }
        if let Some(v) = var("DATABASE_URL") {
            settings.database_url = Some(v.into());
        }
        if let Some(v) = var("KAFKA_BROKERS") {
            settings.kafka_brokers = Some(v);
        }
        if let Some(v) = var("GATEWAY_MAX_COST") {
            settings.gateway_max_cost = Some(parse("GATEWAY_MAX_COST", &v)?);
        }
        if let Some(v) = var("GATEWAY_RATE_PER_IP") {
            settings.gateway_rate_per_ip = Some(parse("GATEWAY_RATE_PER_IP", &v)?);
        }
        if let Some(v) = var("GATEWAY_DEDUPE_SUBGRAPH_REQUESTS") {
            settings.gateway_dedupe_subgraph_requests =
                parse("GATEWAY_DEDUPE_SUBGRAPH_REQUESTS", &v)?;
        }
        if let Some(v) = var("GATEWAY_TRUSTED_PROXIES") {
            settings.gateway_trusted_proxies = v;
        }
        if let Some(v) = var("REDIS_URL") {
            settings.redis_url = Some(v.into());
        }
        if let Some(v) = var("MONGODB_URI") {
            settings.mongodb_uri = Some(v.trim().to_owned().into());
        }
        if let Some(v) = var("MODEL_SERVICE_URL") {
            settings.model_service_url = Some(v.trim().to_owned());
        }
        if let Some(v) = var("CHAT_WORKERS") {
            settings.chat_workers = parse("CHAT_WORKERS", &v)?;
        }
        if let Some(v) = var("EMBEDDING_CATCH_UP_MS") {
            settings.embedding_catch_up_ms = parse("EMBEDDING_CATCH_UP_MS", &v)?;
        }
        if let Some(v) = var("KAFKA_TOPIC_PREFIX") {
            settings.kafka_topic_prefix = v;
        }
        if let Some(v) = var("KAFKA_PARTITIONS") {
            settings.kafka_partitions = parse("KAFKA_PARTITIONS", &v)?;
        }
        if let Some(v) = var("KAFKA_SESSION_TIMEOUT_MS") {
            settings.kafka_session_timeout_ms = parse("KAFKA_SESSION_TIMEOUT_MS", &v)?;
        }
        if let Some(v) = var("KAFKA_FETCH_WAIT_MS") {
            settings.kafka_fetch_wait_ms = parse("KAFKA_FETCH_WAIT_MS", &v)?;
        }
        if let Some(v) = var("BLOODY_SWEET_LISTEN") {
            settings.listen = parse("BLOODY_SWEET_LISTEN", &v)?;
        }
        if let Some(v) = var("DATABASE_MAX_CONNECTIONS") {
            settings.database_max_connections = parse("DATABASE_MAX_CONNECTIONS", &v)?;
        }
        for (name, slot) in [
            ("ORDER_LISTEN", &mut settings.order_listen),
            ("INVENTORY_LISTEN", &mut settings.inventory_listen),
            ("PAYMENT_LISTEN", &mut settings.payment_listen),
            ("REVIEW_LISTEN", &mut settings.review_listen),
            ("TOSS_TEST_LISTEN", &mut settings.toss_test_listen),
            ("DEV_ISSUER_LISTEN", &mut settings.dev_issuer_listen),
            ("MODEL_LISTEN", &mut settings.model_listen),
        ] {
            if let Some(v) = var(name) {
                *slot = parse(name, &v)?;
            }
        }
        if let Some(v) = var("TOSS_BASE_URL") {
            settings.toss_base_url = Some(v);
        }
        if let Some(v) = var("IDENTITY_SECRET") {
            settings.identity_secret = Some(v.into());
        }
        if let Some(Err(err)) = settings
            .identity_secret
            .as_ref()
            .map(|s| auth::IdentitySigner::new(s.expose_secret().as_bytes()))
        {
            return Err(SettingsError::Env {
                name: "IDENTITY_SECRET",
                reason: err.to_string(),
            });
        }
        if let Some(v) = var("TOSS_SECRET_KEY") {
            settings.toss_secret_key = Some(v.into());
        }
        for (name, slot) in [
            ("COGNITO_REGION", &mut settings.cognito_region),
            ("COGNITO_USER_POOL_ID", &mut settings.cognito_user_pool_id),
            ("COGNITO_CLIENT_ID", &mut settings.cognito_client_id),
        ] {
            if let Some(v) = var(name) {
                *slot = Some(v.trim().to_owned());
            }
        }
        let cognito_set = [
            &settings.cognito_region,
            &settings.cognito_user_pool_id,
            &settings.cognito_client_id,
        ]
        .iter()
        .filter(|v| v.is_some())
        .count();
        if cognito_set != 0 && cognito_set != 3 {
            return Err(SettingsError::Env {
                name: "COGNITO_REGION",
                reason: "set COGNITO_REGION, COGNITO_USER_POOL_ID and COGNITO_CLIENT_ID together"
                    .into(),
            });
        }
        if let Some(v) = var("PAYMENT_TIMEOUT_SECS") {
            settings.payment_timeout_secs = parse("PAYMENT_TIMEOUT_SECS", &v)?;
        }
        if !(1..=MAX_SAGA_WAIT_SECS).contains(&settings.payment_timeout_secs) {
            return Err(SettingsError::Env {
                name: "PAYMENT_TIMEOUT_SECS",
                reason: format!("must be 1 to {MAX_SAGA_WAIT_SECS} (a week)"),
            });
        }
        if let Some(v) = var("REFUND_RETRY_SECS") {
            settings.refund_retry_secs = parse("REFUND_RETRY_SECS", &v)?;
        }
        if !(1..=MAX_SAGA_WAIT_SECS).contains(&settings.refund_retry_secs) {
            return Err(SettingsError::Env {
                name: "REFUND_RETRY_SECS",
                reason: format!("must be 1 to {MAX_SAGA_WAIT_SECS} (a week)"),
            });
        }
        if let Some(v) = var("ORDER_MAX_OPEN_PER_CUSTOMER") {
            settings.order_max_open_per_customer = parse("ORDER_MAX_OPEN_PER_CUSTOMER", &v)?;
        }
        if !(1..=MAX_OPEN_ORDERS).contains(&settings.order_max_open_per_customer) {
            return Err(SettingsError::Env {
                name: "ORDER_MAX_OPEN_PER_CUSTOMER",
                reason: format!("must be 1 to {MAX_OPEN_ORDERS}"),
            });
        }
        if settings.chat_workers == 0 || settings.embedding_catch_up_ms == 0 {
            return Err(SettingsError::Env {
                name: "CHAT_WORKERS",
                reason: "CHAT_WORKERS and EMBEDDING_CATCH_UP_MS must be at least 1".into(),
            });
        }
        if let Err(err) = settings.trusted_proxies() {
            return Err(SettingsError::Env {
                name: "GATEWAY_TRUSTED_PROXIES",
                reason: err.to_string(),
            });
        }
        if settings.kafka_fetch_wait_ms == 0 {
            return Err(SettingsError::Env {
                name: "KAFKA_FETCH_WAIT_MS",
                reason: "must be at least 1".into(),
            });
        }
        if settings.kafka_partitions < 1 {
            return Err(SettingsError::Env {
                name: "KAFKA_PARTITIONS",
                reason: "must be at least 1".into(),
            });
        }
        Ok(settings)
    }

    /// The Cognito user pool when all three settings are given; `None`: the local dev issuer.
    pub fn cognito(&self) -> Option<auth::CognitoConfig> {
        match (
            &self.cognito_region,
            &self.cognito_user_pool_id,
            &self.cognito_client_id,
        ) {
            (Some(region), Some(pool), Some(client)) => {
                Some(auth::CognitoConfig::new(region, pool, client))
            }
            _ => None,
        }
    }

    /// The gateway's trusted proxies, parsed from `gateway_trusted_proxies`.
    pub fn trusted_proxies(&self) -> Result<gateway::TrustedProxies, gateway::GatewayError> {
        gateway::TrustedProxies::parse(&self.gateway_trusted_proxies)
    }

    /// The base URL of the local dev issuer, e.g. `http://127.0.0.1:4011`.
    pub fn dev_issuer_url(&self) -> String {
        format!("http://{}", self.dev_issuer_listen)
    }

    /// The MongoDB URI of the review documents, if configured.
    pub fn mongodb_uri(&self) -> Option<&str> {
        self.mongodb_uri.as_ref().map(|s| s.expose_secret())
    }

    /// The Redis URL, if configured.
    pub fn redis_url(&self) -> Option<&str> {
        self.redis_url.as_ref().map(|s| s.expose_secret())
    }

    /// The Postgres URL, if configured.
    pub fn database_url(&self) -> Option<&str> {
        self.database_url.as_ref().map(|s| s.expose_secret())
    }

    /// The signer of identities passed from the gateway to subgraphs, if `IDENTITY_SECRET` is
    /// set (checked when the settings were loaded).
    pub fn identity_signer(&self) -> Option<auth::IdentitySigner> {
        let secret = self.identity_secret.as_ref()?;
        auth::IdentitySigner::new(secret.expose_secret().as_bytes()).ok()
    }
}

fn parse<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, SettingsError>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e: T::Err| SettingsError::Env {
            name,
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_file_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "kafka_topic_prefix = \"staging.\"\nlisten = \"127.0.0.1:5000\"\n",
        )
        .unwrap();
        let s = Settings::load_from(Some(&file), |name| match name {
            "KAFKA_BROKERS" => Some("b:9092".into()),
            "DATABASE_URL" => Some("postgres://u:hunter2@h/db".into()),
            "BLOODY_SWEET_LISTEN" => Some("".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.kafka_topic_prefix, "staging.");
        assert_eq!(s.listen.port(), 5000);
        assert_eq!(s.kafka_brokers.as_deref(), Some("b:9092"));
        assert_eq!(s.database_url(), Some("postgres://u:hunter2@h/db"));
        assert!(!format!("{s:?}").contains("hunter2"), "secrets never print");
        let d = Settings::load_from(None, |_| None).unwrap();
        assert!(d.database_url.is_none() && d.kafka_brokers.is_none());
        assert_eq!(
            d.listen.port(),
            4000,
            "the gateway serves health and metrics too"
        );
        assert!(d.cognito().is_none(), "the dev issuer by default");
        assert_eq!(d.dev_issuer_url(), "http://127.0.0.1:4011");
    }

    #[test]
    fn the_saga_waits_are_bounded() {
        let d = Settings::load_from(None, |_| None).unwrap();
        assert_eq!((d.payment_timeout_secs, d.refund_retry_secs), (600, 120));
        let s =
            Settings::load_from(None, |n| (n == "REFUND_RETRY_SECS").then(|| "5".into())).unwrap();
        assert_eq!(s.refund_retry_secs, 5);
        for name in ["PAYMENT_TIMEOUT_SECS", "REFUND_RETRY_SECS"] {
            for value in ["0", "604801", "18446744073709551615"] {
                let err =
                    Settings::load_from(None, |n| (n == name).then(|| value.into())).unwrap_err();
                assert!(err.to_string().contains(name), "{name}={value}: {err}");
            }
        }
    }

    #[test]
    fn an_identity_secret_is_long_enough_or_refused() {
        let d = Settings::load_from(None, |_| None).unwrap();
        assert!(d.identity_signer().is_none(), "unsigned by default");
        let name = "IDENTITY_SECRET";
        let long = "s".repeat(32);
        let s = Settings::load_from(None, |n| (n == name).then(|| long.clone())).unwrap();
        assert!(s.identity_signer().is_some());
        let err = Settings::load_from(None, |n| (n == name).then(|| "short".into())).unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
    }

    #[test]
    fn open_orders_per_customer_are_bounded() {
        let d = Settings::load_from(None, |_| None).unwrap();
        assert_eq!(d.order_max_open_per_customer, 10);
        let name = "ORDER_MAX_OPEN_PER_CUSTOMER";
        let s = Settings::load_from(None, |n| (n == name).then(|| "3".into())).unwrap();
        assert_eq!(s.order_max_open_per_customer, 3);
        for value in ["0", "1001", "-1", "many"] {
            let err = Settings::load_from(None, |n| (n == name).then(|| value.into())).unwrap_err();
            assert!(err.to_string().contains(name), "{value}: {err}");
        }
    }

    #[test]
    fn cognito_needs_all_three_settings() {
        let all = Settings::load_from(None, |name| match name {
            "COGNITO_REGION" => Some("ap-northeast-2".into()),
            "COGNITO_USER_POOL_ID" => Some("ap-northeast-2_Abc".into()),
            "COGNITO_CLIENT_ID" => Some("client1".into()),
            "DEV_ISSUER_LISTEN" => Some("127.0.0.1:5011".into()),
            _ => None,
        })
        .unwrap();
        let cognito = all.cognito().unwrap();
        assert_eq!(
            cognito.issuer(),
            "https://cognito-idp.ap-northeast-2.amazonaws.com/ap-northeast-2_Abc"
        );
        assert_eq!(all.dev_issuer_listen.port(), 5011);
        let err = Settings::load_from(None, |name| {
            (name == "COGNITO_REGION").then(|| "ap-northeast-2".into())
        })
        .unwrap_err();
        assert!(err.to_string().contains("together"), "{err}");
    }

    #[test]
    fn review_intelligence_settings() {
        let d = Settings::load_from(None, |_| None).unwrap();
        assert!(d.redis_url().is_none() && d.model_service_url.is_none());
        assert_eq!(d.model_listen.port(), 50051);
        let s = Settings::load_from(None, |name| match name {
            "REDIS_URL" => Some("redis://:hunter2@r:6379".into()),
            "MODEL_SERVICE_URL" => Some(" http://m:50051 ".into()),
            "MODEL_LISTEN" => Some("0.0.0.0:6000".into()),
            "CHAT_WORKERS" => Some("4".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.redis_url(), Some("redis://:hunter2@r:6379"));
        assert!(!format!("{s:?}").contains("hunter2"), "secrets never print");
        assert_eq!(s.model_service_url.as_deref(), Some("http://m:50051"));
        assert_eq!((s.model_listen.port(), s.chat_workers), (6000, 4));
        let err =
            Settings::load_from(None, |n| (n == "CHAT_WORKERS").then(|| "0".into())).unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
    }

    #[test]
    fn mongodb_uri_selects_the_review_documents_and_never_prints() {
        assert!(
            Settings::load_from(None, |_| None)
                .unwrap()
                .mongodb_uri()
                .is_none()
        );
        let uri = "mongodb+srv://app:hunter2@cluster0.example.net/shop";
        let s = Settings::load_from(None, |n| (n == "MONGODB_URI").then(|| format!(" {uri} ")))
            .unwrap();
        assert_eq!(s.mongodb_uri(), Some(uri));
        assert!(!format!("{s:?}").contains("hunter2"), "secrets never print");
    }

    #[test]
    fn gateway_trusted_proxies_are_cidrs() {
        let d = Settings::load_from(None, |_| None).unwrap();
        assert!(d.trusted_proxies().unwrap().is_empty(), "nobody by default");
        let s = Settings::load_from(None, |n| {
            (n == "GATEWAY_TRUSTED_PROXIES").then(|| "10.0.0.0/16, 10.1.0.0/16".into())
        })
        .unwrap();
        assert!(s.trusted_proxies().unwrap().trusts([10, 1, 2, 3].into()));
        let err = Settings::load_from(None, |n| {
            (n == "GATEWAY_TRUSTED_PROXIES").then(|| "10.0.0.0/99".into())
        })
        .unwrap_err();
        assert!(err.to_string().contains("GATEWAY_TRUSTED_PROXIES"), "{err}");
    }

    #[test]
    fn refuses_unknown_keys_and_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "kafka_brokerz = \"x\"\n").unwrap();
        let err = Settings::load_from(Some(&file), |_| None).unwrap_err();
        assert!(err.to_string().contains("kafka_brokerz"), "{err}");
        let err = Settings::load_from(None, |n| (n == "KAFKA_PARTITIONS").then(|| "zero".into()))
            .unwrap_err();
        assert!(err.to_string().contains("KAFKA_PARTITIONS"));
        let err = Settings::load_from(None, |n| (n == "KAFKA_PARTITIONS").then(|| "0".into()))
            .unwrap_err();
        assert!(err.to_string().contains("at least 1"));
        let err = Settings::load_from(None, |n| (n == "KAFKA_FETCH_WAIT_MS").then(|| "0".into()))
            .unwrap_err();
        assert!(err.to_string().contains("KAFKA_FETCH_WAIT_MS"), "{err}");
        let quick =
            Settings::load_from(None, |n| (n == "KAFKA_FETCH_WAIT_MS").then(|| "10".into()))
                .unwrap();
        assert_eq!(quick.kafka_fetch_wait_ms, 10);
        assert_eq!(Settings::default().kafka_fetch_wait_ms, 15);
    }
}
