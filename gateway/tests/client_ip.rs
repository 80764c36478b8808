//! The per-IP rate limit behind a load balancer: `X-Forwarded-For` counts only from trusted
//! proxies (the tests' loopback peer plays the ALB).

mod support;

use std::num::NonZeroU32;

use gateway::{RateLimits, TrustedProxies};
use serde_json::json;
use support::{Stack, start};

/// One request per second and no burst per IP, so a second request from one client is
/// refused at once.
fn one_per_ip(config: &mut gateway::GatewayConfig) {
    config.rate_limits = RateLimits {
        per_ip_per_second: NonZeroU32::MIN,
        per_ip_burst: NonZeroU32::MIN,
        ..RateLimits::default()
    };
}

/// POSTs an anonymous query with `X-Forwarded-For: forwarded` (if any); returns the status.
async fn anonymous(stack: &Stack, forwarded: Option<&str>) -> u16 {
    let mut request = stack
        .http
        .post(stack.graphql())
        .json(&json!({ "query": "{ menu { id } }" }));
    if let Some(forwarded) = forwarded {
        request = request.header("x-forwarded-for", forwarded);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let stack = start(one_per_ip).await;
    assert_eq!(anonymous(&stack, Some("198.51.100.1")).await, 200);
    // A new spoofed address each time does not buy a new bucket: the peer is limited.
    assert_eq!(anonymous(&stack, Some("198.51.100.2")).await, 429);
    assert_eq!(anonymous(&stack, None).await, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_names_the_client_that_is_limited() {
    let stack = start(|config| {
        one_per_ip(config);
        config.trusted_proxies = TrustedProxies::parse("127.0.0.0/8, 10.0.0.0/8").unwrap();
    })
    .await;
    // The client appends whatever it likes on the left; the ALB (and an internal hop)
    // append on the right. The rightmost untrusted address is the client.
    let through_alb = "6.6.6.6, 203.0.113.7, 10.0.0.9";
    assert_eq!(anonymous(&stack, Some(through_alb)).await, 200);
    assert_eq!(anonymous(&stack, Some("1.2.3.4, 203.0.113.7")).await, 429);
    // Another client behind the same ALB, and the ALB itself, have their own buckets.
    assert_eq!(anonymous(&stack, Some("203.0.113.8")).await, 200);
    assert_eq!(anonymous(&stack, None).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_forwarded_for_falls_back_to_the_peer() {
    let stack = start(|config| {
        one_per_ip(config);
        config.trusted_proxies = TrustedProxies::parse("127.0.0.1/32").unwrap();
    })
    .await;
    assert_eq!(anonymous(&stack, Some("203.0.113.7, not-an-ip")).await, 200);
    // That request was counted against the peer, not against 203.0.113.7.
    assert_eq!(anonymous(&stack, None).await, 429);
    assert_eq!(anonymous(&stack, Some("203.0.113.7")).await, 200);
}
