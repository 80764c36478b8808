//! A subgraph's routes behind the gateway's signature, over real HTTP: only identities the
//! gateway signed reach them.

use auth::{Identity, IdentitySigner};
use axum::http::HeaderMap;
use axum::routing::get;

/// Who the routes see: the identity's `sub`, `anonymous`, or the error reading it.
async fn who(headers: HeaderMap) -> String {
    match Identity::from_headers(&headers) {
        Ok(Some(identity)) => identity.sub,
        Ok(None) => "anonymous".into(),
        Err(err) => format!("error: {err}"),
    }
}

/// Serves `/who` behind `signer` on a free port; returns its URL.
async fn serve(signer: Option<IdentitySigner>) -> String {
    let router = subgraph::verify_identities(axum::Router::new().route("/who", get(who)), signer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/who", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

async fn ask(url: &str, identity: Option<String>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(value) = identity {
        request = request.header(auth::IDENTITY_HEADER, value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_identities_the_gateway_signed_reach_the_routes() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let signer = IdentitySigner::new(b"a secret the gateway and subgraphs share").unwrap();
    let url = serve(Some(signer.clone())).await;
    let staff = Identity::staff("lee");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(
        ask(&url, Some(signer.header_value(&staff, now + 600))).await,
        (200, "lee".to_owned())
    );
    assert_eq!(ask(&url, None).await, (200, "anonymous".to_owned()));
    // Claiming to be staff without the gateway's signature, with another secret's, or with
    // the gateway's on an identity whose token has expired.
    let other = IdentitySigner::new(&[9; 32]).unwrap();
    for forged in [
        staff.to_header_value(),
        other.header_value(&staff, now + 600),
        signer.header_value(&staff, now - 3_600),
    ] {
        let (status, body) = ask(&url, Some(forged)).await;
        assert_eq!(status, 401, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    }

    // Without a secret the routes read the plain header as before.
    let url = serve(None).await;
    assert_eq!(
        ask(&url, Some(staff.to_header_value())).await,
        (200, "lee".to_owned())
    );
}
