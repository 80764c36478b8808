//! The dev issuer's HTTP endpoints, served on 127.0.0.1:0.

use auth::dev_issuer::dev_user_sub;
use auth::{DevIssuer, DevIssuerError, Group, JwtVerifier, MintResponse, TokenUse};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const CLIENT: &str = "dev-client";

async fn start_issuer() -> DevIssuer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    DevIssuer::start(listener, CLIENT).await.unwrap()
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

#[tokio::test]
async fn mints_access_and_id_tokens_over_http() {
    let issuer = start_issuer().await;
    let verifier = JwtVerifier::new(issuer.config()).unwrap();
    let url = format!("{}/token", issuer.base_url());

    let access: MintResponse = http()
        .post(&url)
        .json(&json!({ "username": "kim", "groups": ["staff"], "token_use": "access", "ttl_secs": 600 }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let id: MintResponse = http()
        .post(&url)
        .json(&json!({ "username": "kim", "token_use": "id" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(access.expires_in, 600);
    assert_eq!(access.id_token, None);
    let verified = verifier
        .verify(&access.access_token.unwrap())
        .await
        .unwrap();
    assert_eq!(verified.token_use, TokenUse::Access);
    assert_eq!(verified.identity.sub, dev_user_sub("kim"));
    assert_eq!(verified.identity.groups, vec![Group::Staff]);
    assert_eq!(id.expires_in, 3600);
    assert_eq!(id.access_token, None);
    let verified = verifier.verify(&id.id_token.unwrap()).await.unwrap();
    assert_eq!(verified.token_use, TokenUse::Id);
    assert_eq!(verified.identity.username, "kim");
}

#[tokio::test]
async fn refuses_bad_token_requests() {
    let issuer = start_issuer().await;
    let url = format!("{}/token", issuer.base_url());
    let bodies = [
        json!({ "username": "" }),
        json!({ "username": "kim", "ttl_secs": 0 }),
        json!({ "username": "kim", "ttl_secs": 86_401 }),
        json!({ "username": "kim", "token_use": "refresh" }),
        json!({ "username": "kim", "admin": true }),
        json!({ "groups": ["staff"] }),
    ];
    for body in bodies {
        let response = http().post(&url).json(&body).send().await.unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert!(status.is_client_error(), "{body}: {status}");
        assert!(answer["message"].is_string(), "{body}: {answer}");
    }
}

#[tokio::test]
async fn publishes_the_current_and_previous_keys() {
    let issuer = start_issuer().await;
    let jwks_url = format!("{}/.well-known/jwks.json", issuer.base_url());
    let fetch = || async {
        http()
            .get(&jwks_url)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };

    let before = fetch().await;
    let first_kid = issuer.current_kid();
    issuer.rotate_key().await.unwrap();
    let after = fetch().await;

    assert_eq!(before["keys"].as_array().unwrap().len(), 1);
    let key = &before["keys"][0];
    assert_eq!(key["kid"], json!(first_kid));
    assert_eq!(
        (key["kty"].clone(), key["alg"].clone(), key["use"].clone()),
        (json!("RSA"), json!("RS256"), json!("sig"))
    );
    assert_eq!(key["e"], json!("AQAB"));
    // 2048-bit modulus: 256 bytes, 342 base64url characters.
    assert_eq!(key["n"].as_str().unwrap().len(), 342);
    let kids: Vec<&Value> = after["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["kid"])
        .collect();
    assert_eq!(kids, vec![&json!(issuer.current_kid()), &json!(first_kid)]);
    assert_ne!(issuer.current_kid(), first_kid);
    assert_eq!(issuer.jwks_requests(), 2);
}

#[tokio::test]
async fn refuses_to_listen_beyond_loopback() {
    let listener = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let refusal = DevIssuer::start(listener, CLIENT).await.unwrap_err();
    assert!(
        matches!(refusal, DevIssuerError::NotLoopback(_)),
        "{refusal}"
    );
}

#[tokio::test]
async fn stops_serving_on_shutdown_and_on_drop() {
    let stopped = start_issuer().await;
    let url = format!("{}/.well-known/jwks.json", stopped.base_url());
    assert!(http().get(&url).send().await.unwrap().status().is_success());
    stopped.shutdown().await;
    assert!(http().get(&url).send().await.is_err());

    let dropped = start_issuer().await;
    let url = format!("{}/.well-known/jwks.json", dropped.base_url());
    drop(dropped);
    let mut refused = false;
    for _ in 0..250 {
        if http().get(&url).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(refused, "still serving after drop");
}
