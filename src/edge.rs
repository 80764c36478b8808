//! The platform's edge: the gateway's configuration from the settings, the identity provider
//! (Cognito, or the local dev issuer), and dev tokens for `bloody-sweet token`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use gateway::{GatewayConfig, SubgraphEndpoint, SupergraphSource};

use crate::settings::{DEV_CLIENT_ID, Settings};

/// The GraphQL URL of a subgraph listening on `addr` (an unspecified address means loopback).
pub fn subgraph_url(addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    format!("http://{host}/graphql")
}

/// The order, inventory and payment subgraphs at these addresses, for composition.
pub fn ordering_subgraphs(
    order: SocketAddr,
    inventory: SocketAddr,
    payment: SocketAddr,
) -> Vec<SubgraphEndpoint> {
    [
        ("order", order),
        ("inventory", inventory),
        ("payment", payment),
    ]
    .into_iter()
    .map(|(name, addr)| SubgraphEndpoint {
        name: name.to_owned(),
        url: subgraph_url(addr),
    })
    .collect()
}

/// Where `bloody-sweet gateway` takes its supergraph from.
pub fn supergraph_source(
    file: Option<PathBuf>,
    compose: Option<&str>,
) -> anyhow::Result<SupergraphSource> {
    match (file, compose) {
        (Some(file), None) => Ok(SupergraphSource::File(file)),
        (None, Some(list)) => Ok(SupergraphSource::Compose(SubgraphEndpoint::parse_list(
            list,
        )?)),
        _ => anyhow::bail!("give exactly one of --supergraph FILE or --compose name=url,..."),
    }
}

/// The gateway's configuration: `source`, listening on `settings.listen`, trusting Cognito
/// when configured, else the dev issuer at `DEV_ISSUER_LISTEN`.
pub fn gateway_config(settings: &Settings, source: SupergraphSource) -> GatewayConfig {
    let mut config = GatewayConfig::new(source);
    config.listen = settings.listen;
    config.dedupe_subgraph_requests = settings.gateway_dedupe_subgraph_requests;
    if let Some(max_cost) = settings.gateway_max_cost {
        config.limits.max_cost = max_cost;
    }
    if let Some(rate) = settings
        .gateway_rate_per_ip
        .and_then(std::num::NonZeroU32::new)
    {
        config.rate_limits.per_ip_per_second = rate;
        config.rate_limits.per_ip_burst =
            rate.saturating_mul(std::num::NonZeroU32::MIN.saturating_add(1));
    }
    config.identity_signer = settings.identity_signer();
    if config.identity_signer.is_none() {
        tracing::warn!(
            "IDENTITY_SECRET unset: subgraphs trust the identity header unsigned; reach them only through the gateway"
        );
    }
    // Checked when the settings were loaded.
    if let Ok(trusted) = settings.trusted_proxies() {
        config.trusted_proxies = trusted;
    }
    config.cognito = Some(match settings.cognito() {
        Some(cognito) => {
            tracing::info!(identity = "cognito", "identity provider selected");
            cognito
        }
        None => {
            tracing::info!(identity = "dev issuer", issuer = %settings.dev_issuer_url(), "identity provider selected");
            auth::CognitoConfig::dev(&settings.dev_issuer_url(), DEV_CLIENT_ID)
        }
    });
    config
}

/// Starts the local dev issuer on `DEV_ISSUER_LISTEN` unless Cognito is configured.
pub async fn start_dev_issuer(settings: &Settings) -> anyhow::Result<Option<auth::DevIssuer>> {
    if settings.cognito().is_some() {
        return Ok(None);
    }
    let listener = tokio::net::TcpListener::bind(settings.dev_issuer_listen)
        .await
        .with_context(|| format!("binding the dev issuer on {}", settings.dev_issuer_listen))?;
    let issuer = auth::DevIssuer::start(listener, DEV_CLIENT_ID)
        .await
        .context("starting the dev issuer")?;
    Ok(Some(issuer))
}

/// Asks the running dev issuer (`POST {DEV_ISSUER_LISTEN}/token`) for a token.
pub async fn mint_dev_token(
    settings: &Settings,
    request: &auth::MintRequest,
) -> anyhow::Result<String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = format!("{}/token", settings.dev_issuer_url());
    let response = reqwest::Client::new()
        .post(&url)
        .json(request)
        .send()
        .await
        .with_context(|| {
            format!("asking the dev issuer at {url}: is `bloody-sweet up` running?")
        })?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        anyhow::bail!("the dev issuer refused ({status}): {body}");
    }
    let minted: auth::MintResponse = response.json().await.context("reading the token")?;
    minted
        .access_token
        .or(minted.id_token)
        .context("the dev issuer returned no token")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_config_takes_the_trusted_proxies_and_the_ip_rate() {
        let settings = Settings::load_from(None, |name| match name {
            "GATEWAY_TRUSTED_PROXIES" => Some("10.0.0.0/8".into()),
            "GATEWAY_RATE_PER_IP" => Some("7".into()),
            _ => None,
        })
        .unwrap();
        let config = gateway_config(&settings, SupergraphSource::Sdl(String::new()));
        assert!(config.trusted_proxies.trusts([10, 0, 0, 5].into()));
        assert!(!config.trusted_proxies.trusts([127, 0, 0, 1].into()));
        assert_eq!(config.rate_limits.per_ip_per_second.get(), 7);
        let default = gateway_config(
            &Settings::load_from(None, |_| None).unwrap(),
            SupergraphSource::Sdl(String::new()),
        );
        assert!(default.trusted_proxies.is_empty());
    }
}
