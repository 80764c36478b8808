//! The verifier against a real dev issuer served over HTTP on 127.0.0.1:0.

use std::sync::OnceLock;
use std::time::Duration;

use auth::dev_issuer::dev_user_sub;
use auth::{
    CognitoConfig, DevIssuer, Group, Identity, JwtVerifier, MintRequest, TokenError, TokenUse,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::net::TcpListener;

const CLIENT: &str = "dev-client";

async fn start_issuer() -> DevIssuer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    DevIssuer::start(listener, CLIENT).await.unwrap()
}

/// One issuer for the tests that neither rotate its key, count its JWKS fetches nor stop it
/// (generating an RSA key is slow in unoptimised builds). It runs on its own runtime thread,
/// as each test has its own runtime; every test still gets its own verifier and key cache.
fn shared_issuer() -> &'static DevIssuer {
    static ISSUER: OnceLock<DevIssuer> = OnceLock::new();
    ISSUER.get_or_init(|| {
        let (started, issuer) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                started.send(start_issuer().await).unwrap();
                std::future::pending::<()>().await
            })
        });
        issuer.recv().unwrap()
    })
}

fn now() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap()
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// `token` with its header replaced by `header` (payload and signature kept).
fn with_header(token: &str, header: &Value) -> String {
    let (_, rest) = token.split_once('.').unwrap();
    format!("{}.{rest}", b64_json(header))
}

/// A token the issuer signed over claims altered by `change`.
fn signed_with(
    issuer: &DevIssuer,
    request: &MintRequest,
    change: impl FnOnce(&mut Value),
) -> String {
    let mut claims = issuer.claims(request).unwrap();
    change(&mut claims);
    issuer.sign(&claims).unwrap()
}

fn customer_access() -> MintRequest {
    MintRequest::access("kim", &[Group::Customers])
}

#[tokio::test]
async fn accepts_a_valid_access_token() {
    let issuer = start_issuer().await;
    let verifier = JwtVerifier::new(issuer.config()).unwrap();
    let before = now();
    let token = issuer.mint(&customer_access()).unwrap();

    let verified = verifier.verify(&token).await.unwrap();
    let after = now();

    assert_eq!(
        verified.identity,
        Identity {
            sub: dev_user_sub("kim"),
            username: "kim".into(),
            groups: vec![Group::Customers],
        }
    );
    assert_eq!(verified.token_use, TokenUse::Access);
    assert!((before + 3600..=after + 3600).contains(&verified.expires_at));
    assert_eq!(issuer.jwks_requests(), 1);
}

#[tokio::test]
async fn accepts_a_valid_id_token() {
    let issuer = shared_issuer();
    let verifier = JwtVerifier::new(issuer.config()).unwrap();
    let token = issuer
        .mint(&MintRequest::id("lee", &[Group::Staff]))
        .unwrap();

    let verified = verifier.verify(&token).await.unwrap();

    assert_eq!(verified.token_use, TokenUse::Id);
    assert_eq!(verified.identity.username, "lee");
    assert_eq!(verified.identity.sub, dev_user_sub("lee"));
    assert!(verified.identity.is_staff());
}

#[tokio::test]
async fn refuses_an_expired_token_beyond_the_leeway() {
    let issuer = shared_issuer();
    let verifier = JwtVerifier::new(issuer.config()).unwrap();
    let at = |exp: i64| {
        signed_with(issuer, &customer_access(), |c| {
            c["iat"] = json!(exp - 3600);
            c["nbf"] = json!(exp - 3600);
            c["exp"] = json!(exp);
        })
    };

    assert_eq!(
        verifier.verify(&at(now() - 120)).await,
        Err(TokenError::Expired)
    );
    // Within the default 30 s leeway.
    assert!(verifier.verify(&at(now() - 5)).await.is_ok());
}

#[tokio::test]
async fn refuses_a_token_not_yet_valid() {
    let issuer = shared_issuer();
    let verifier = JwtVerifier::new(issuer.config()).unwrap();
    let token = signed_with(issuer, &customer_access(), |c| {
        c["nbf"] = json!(now() + 600)
    });

    assert_eq!(verifier.verify(&token).await, Err(TokenError::NotYetValid));
}

#[tokio::test]
async fn refuses_another_issuer() {
    let issuer = shared_issuer();
    let verifier = JwtVerifier::new(issuer.config()).unwrap();
    let token = signed_with(issuer, &customer_access(), |c| {
        c["iss"] = json!("https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other");
    });

    assert_eq!(verifier.verify(&token).await, Err(TokenError::WrongIssuer));
}

#[tokio::test]
async fn refuses_a_token_that_is_neither_access_nor_id() {
    let issuer = shared_issuer();
    let verifier = JwtVerifier::new(issuer.config()).unwrap();
    let refresh = signed_with(issuer, &customer_access(), |c| {
        c["token_use"] = json!("refresh")
    });
    let missing = signed_with(issuer, &customer_access(), |c| {
        c.as_object_mut().unwrap().remove("token_use");
    });

    assert_eq!(
        verifier.verify(&refresh).await,
        Err(TokenError::WrongTokenUse)
    );
    assert_eq!(
        verifier.verify(&missing).await,
        Err(TokenError::WrongTokenUse)
    );
}

#[tokio::test]
async fn refuses_an_access_token_for_another_client() {
    let issuer = shared_issuer();
    let verifier = JwtVerifier::new(issuer.config()).unwrap();
    let token = signed_with(issuer, &customer_access(), |c| {
        c["client_id"] = json!("other")
    });
    // An id token's `aud` does not stand in for an access token's `client_id`.
    let aud_only = signed_with(issuer, &customer_access(), |c| {
        c.as_object_mut().unwrap().remove("client_id");
        c["aud"] = json!(CLIENT);
    });

    assert_eq!(
        verifier.verify(&token).await,
        Err(TokenError::WrongAudience)
    );
    assert_eq!(
        verifier.verify(&aud_only).await,
        Err(TokenError::WrongAudience)
    );
}

#[tokio::test]
async fn refuses_an_id_token_for_another_audience() {
    let issuer = shared_issuer();
    let verifier = JwtVerifier::new(issuer.config()).unwrap();
    let request = MintRequest::id("lee", &[]);
    let token = signed_with(issuer, &request, |c| c["aud"] = json!("other"));
    let client_id_only = signed_with(issuer, &request, |c| {
        c.as_object_mut().unwrap().remove("aud");
        c["client_id"] = json!(CLIENT);
    });

    assert_eq!(
        verifier.verify(&token).await,
        Err(TokenError::WrongAudience)
    );
    assert_eq!(
        verifier.verify(&client_id_only).await,
        Err(TokenError::WrongAudience)
    );
}

#[tokio::test]
async fn refuses_alg_none() {
    let issuer = shared_issuer();
    let verifier = JwtVerifier::new(issuer.config()).unwrap();
    let claims = issuer.claims(&customer_access()).unwrap();
    let kid = issuer.current_kid();

    for alg in ["none", "None", "NONE"] {
        let header = json!({ "alg": alg, "kid": kid });
        let unsigned = format!("{}.{}.", b64_json(&header), b64_json(&claims));
        assert_eq!(
            verifier.verify(&unsigned).await,
            Err(TokenError::UnsupportedAlgorithm),
            "{alg}"
        );
    }
}

#[tokio::test]
async fn refuses_hs256_signed_with_the_public_key() {
    let issuer = shared_issuer();
    let verifier = JwtVerifier::new(issuer.config()).unwrap();
    // Warm the cache so the key is known, then sign HS256 with the public key's bytes.
    verifier
        .verify(&issuer.mint(&customer_access()).unwrap())
        .await
        .unwrap();
    let jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", issuer.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = &jwks["keys"][0];
    let modulus = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    let jwk_bytes = serde_json::to_vec(jwk).unwrap();
    let claims = issuer.claims(&customer_access()).unwrap();

    for secret in [modulus, jwk_bytes] {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(issuer.current_kid());
        let forged = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&secret),
        )
        .unwrap();
        assert_eq!(
            verifier.verify(&forged).await,
            Err(TokenError::UnsupportedAlgorithm)
        );
    }
}

#[tokio::test]
async fn refreshes_once_on_an_unknown_kid_then_the_rotated_key_verifies() {
    let issuer = start_issuer().await;
    let config = CognitoConfig {
        min_refresh_interval: Duration::ZERO,
        ..issuer.config()
    };
    let verifier = JwtVerifier::new(config).unwrap();
    let old = issuer.mint(&customer_access()).unwrap();
    verifier.verify(&old).await.unwrap();
    assert_eq!(issuer.jwks_requests(), 1);

    issuer.rotate_key().await.unwrap();
    let new = issuer.mint(&customer_access()).unwrap();
    assert!(verifier.verify(&new).await.is_ok());
    assert_eq!(issuer.jwks_requests(), 2, "one refresh for the new kid");
    assert!(verifier.verify(&new).await.is_ok());
    assert!(
        verifier.verify(&old).await.is_ok(),
        "the previous key is still published"
    );
    assert_eq!(
        issuer.jwks_requests(),
        2,
        "known kids are served from the cache"
    );

    let header = json!({ "alg": "RS256", "kid": "no-such-key" });
    let unknown = with_header(&new, &header);
    assert_eq!(verifier.verify(&unknown).await, Err(TokenError::UnknownKey));
    assert_eq!(issuer.jwks_requests(), 3);
}

#[tokio::test]
async fn refreshes_the_keys_at_most_once_per_interval() {
    let issuer = start_issuer().await;
    // An hour, so that slow key generation below cannot outlast it.
    let config = CognitoConfig {
        min_refresh_interval: Duration::from_secs(3600),
        ..issuer.config()
    };
    let verifier = JwtVerifier::new(config).unwrap();
    let token = issuer.mint(&customer_access()).unwrap();

    // Concurrent first uses share one fetch.
    let first = futures::future::join_all((0..16).map(|_| verifier.verify(&token))).await;
    assert!(first.iter().all(Result::is_ok));
    assert_eq!(issuer.jwks_requests(), 1);

    // Many unknown kids within the interval: refused without another fetch.
    let unknown: Vec<String> = (0..50)
        .map(|i| {
            with_header(
                &token,
                &json!({ "alg": "RS256", "kid": format!("kid-{i}") }),
            )
        })
        .collect();
    let refused = futures::future::join_all(unknown.iter().map(|t| verifier.verify(t))).await;
    assert!(refused.iter().all(|r| *r == Err(TokenError::UnknownKey)));

    // Even a genuinely rotated key waits for the interval.
    issuer.rotate_key().await.unwrap();
    let rotated = issuer.mint(&customer_access()).unwrap();
    assert_eq!(verifier.verify(&rotated).await, Err(TokenError::UnknownKey));
    assert_eq!(issuer.jwks_requests(), 1);
}

#[tokio::test]
async fn concurrent_unknown_kids_share_one_fetch() {
    let issuer = start_issuer().await;
    let config = CognitoConfig {
        min_refresh_interval: Duration::ZERO,
        ..issuer.config()
    };
    let verifier = JwtVerifier::new(config).unwrap();
    verifier
        .verify(&issuer.mint(&customer_access()).unwrap())
        .await
        .unwrap();
    issuer.rotate_key().await.unwrap();
    let rotated = issuer.mint(&customer_access()).unwrap();

    let results = futures::future::join_all((0..16).map(|_| verifier.verify(&rotated))).await;

    assert!(results.iter().all(Result::is_ok));
    assert_eq!(issuer.jwks_requests(), 2);
}

#[tokio::test]
async fn refuses_a_tampered_payload() {
    let issuer = shared_issuer();
    let verifier = JwtVerifier::new(issuer.config()).unwrap();
    let token = issuer.mint(&customer_access()).unwrap();
    let mut parts: Vec<&str> = token.split('.').collect();
    let mut claims = issuer.claims(&customer_access()).unwrap();
    claims["cognito:groups"] = json!(["admins"]);
    let forged_payload = b64_json(&claims);
    parts[1] = &forged_payload;

    assert_eq!(
        verifier.verify(&parts.join(".")).await,
        Err(TokenError::BadSignature)
    );
    // The genuine token still verifies.
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn refuses_garbage_without_panicking() {
    let issuer = shared_issuer();
    let verifier = JwtVerifier::new(issuer.config()).unwrap();
    let token = issuer.mint(&customer_access()).unwrap();
    let kid = issuer.current_kid();
    let good_header = b64_json(&json!({ "alg": "RS256", "kid": kid }));
    let (_, payload_and_signature) = token.split_once('.').unwrap();
    let signature = token.rsplit('.').next().unwrap();

    let malformed = [
        String::new(),
        ".".into(),
        "..".into(),
        "...".into(),
        "abc".into(),
        "a.b".into(),
        "a.b.c".into(),
        "a.b.c.d".into(),
        "토큰.토큰.토큰".into(),
        "Bearer x.y.z".into(),
        format!("{token}.{signature}"),
        format!("{good_header}.!!!.{signature}"),
        format!("{good_header}.e30.{signature}"),
        format!(
            "{}.{payload_and_signature}",
            b64_json(&json!({ "kid": kid }))
        ),
        format!("{}.{payload_and_signature}", b64_json(&json!(["RS256"]))),
        format!(
            "{}.{payload_and_signature}",
            URL_SAFE_NO_PAD.encode("{not json")
        ),
        "a".repeat(20_000),
        format!("{token}{}", "A".repeat(20_000)),
    ];
    for garbage in &malformed {
        let refusal = verifier.verify(garbage).await;
        assert!(
            matches!(
                refusal,
                Err(TokenError::Malformed | TokenError::BadSignature)
            ),
            "{garbage:.60}: {refusal:?}"
        );
    }
    assert_eq!(
        verifier
            .verify(&format!("{good_header}.e30.{signature}"))
            .await,
        Err(TokenError::BadSignature)
    );
    assert_eq!(verifier.verify("a.b.c").await, Err(TokenError::Malformed));

    // Pseudo-random bytes, dots and base64 characters.
    let alphabet = b"AZaz09-_.=+/ \n\0\xc3";
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..500 {
        let len = (seed % 300) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                alphabet[(seed % alphabet.len() as u64) as usize]
            })
            .collect();
        let garbage = String::from_utf8_lossy(&bytes);
        let refusal = verifier.verify(&garbage).await.unwrap_err();
        assert_eq!(refusal.code(), "UNAUTHENTICATED");
    }
}

#[tokio::test]
async fn maps_cognito_groups_and_ignores_unknown_ones() {
    let issuer = shared_issuer();
    let verifier = JwtVerifier::new(issuer.config()).unwrap();
    let mut request = MintRequest::access("park", &[]);
    request.groups = [
        "admins",
        "bakers",
        "staff",
        "Customers",
        "customers",
        "staff",
    ]
    .map(String::from)
    .to_vec();

    let groups = verifier
        .verify(&issuer.mint(&request).unwrap())
        .await
        .unwrap()
        .identity
        .groups;
    let none = verifier
        .verify(&issuer.mint(&MintRequest::access("park", &[])).unwrap())
        .await
        .unwrap()
        .identity
        .groups;

    assert_eq!(groups, vec![Group::Admins, Group::Staff, Group::Customers]);
    assert!(none.is_empty());
}

#[tokio::test]
async fn reports_an_unreachable_jwks_as_unavailable() {
    let issuer = start_issuer().await;
    let verifier = JwtVerifier::new(issuer.config()).unwrap();
    let token = issuer.mint(&customer_access()).unwrap();
    issuer.shutdown().await;

    let refusal = verifier.verify(&token).await.unwrap_err();

    assert!(
        matches!(refusal, TokenError::JwksUnavailable(_)),
        "{refusal:?}"
    );
    assert_eq!(refusal.code(), "UNAUTHENTICATED");
    assert!(
        !refusal.to_string().contains("127.0.0.1"),
        "no internals in the message"
    );
    // Within the refresh interval the failure is remembered, not retried.
    assert!(matches!(
        verifier.verify(&token).await,
        Err(TokenError::JwksUnavailable(_))
    ));
}

#[test]
fn refuses_unusable_configuration() {
    let bad = CognitoConfig::new("ap-northeast-2", "pool/../x", "client");
    assert!(matches!(
        JwtVerifier::new(bad),
        Err(TokenError::InvalidConfig(_))
    ));
    let bad_url = CognitoConfig {
        jwks_url: Some("file:///etc/passwd".into()),
        ..CognitoConfig::new("ap-northeast-2", "pool", "client")
    };
    assert!(matches!(
        JwtVerifier::new(bad_url),
        Err(TokenError::InvalidConfig(_))
    ));
}

#[tokio::test]
async fn a_key_removed_from_the_jwks_stops_verifying_once_the_keys_age_out() {
    let issuer = start_issuer().await;
    let max_age = Duration::from_millis(300);
    let config = CognitoConfig {
        min_refresh_interval: Duration::ZERO,
        keys_max_age: max_age,
        ..issuer.config()
    };
    let verifier = JwtVerifier::new(config).unwrap();
    let old = issuer.mint(&customer_access()).unwrap();
    verifier.verify(&old).await.unwrap();
    assert_eq!(issuer.jwks_requests(), 1);

    // Two rotations drop the first key from the published set.
    issuer.rotate_key().await.unwrap();
    issuer.rotate_key().await.unwrap();
    tokio::time::sleep(max_age + Duration::from_millis(50)).await;

    assert_eq!(verifier.verify(&old).await, Err(TokenError::UnknownKey));
    assert_eq!(issuer.jwks_requests(), 2, "aged keys are fetched again");
    let current = issuer.mint(&customer_access()).unwrap();
    verifier.verify(&current).await.unwrap();
    assert_eq!(issuer.jwks_requests(), 2, "fresh keys come from the cache");
}

#[tokio::test]
async fn aged_keys_still_verify_while_the_jwks_is_unreachable() {
    let issuer = start_issuer().await;
    let max_age = Duration::from_millis(200);
    let config = CognitoConfig {
        min_refresh_interval: Duration::ZERO,
        keys_max_age: max_age,
        ..issuer.config()
    };
    let verifier = JwtVerifier::new(config).unwrap();
    let token = issuer.mint(&customer_access()).unwrap();
    verifier.verify(&token).await.unwrap();
    issuer.shutdown().await;
    tokio::time::sleep(max_age + Duration::from_millis(50)).await;

    // The refetch fails, so the keys already fetched keep serving (within the grace) ...
    verifier.verify(&token).await.unwrap();
    // ... but an unknown kid is still refused, with the outage as the reason.
    let unknown = with_header(&token, &json!({ "alg": "RS256", "kid": "no-such-key" }));
    assert!(matches!(
        verifier.verify(&unknown).await,
        Err(TokenError::JwksUnavailable(_))
    ));
}
