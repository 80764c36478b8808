//! Request rate limits: one GCRA bucket per signed-in user and one per anonymous client IP.

use std::net::IpAddr;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimits;
use crate::error::Refusal;

/// Who a request is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateKey<'a> {
    /// A signed-in user, by Cognito `sub`.
    User(&'a str),
    /// An anonymous caller, by client IP.
    Ip(IpAddr),
}

/// The keyed rate limiters.
pub struct RateLimit {
    users: DefaultKeyedRateLimiter<String>,
    ips: DefaultKeyedRateLimiter<IpAddr>,
}

impl RateLimit {
    /// Limiters with `limits`.
    pub fn new(limits: RateLimits) -> Self {
        let users =
            Quota::per_second(limits.per_user_per_second).allow_burst(limits.per_user_burst);
        let ips = Quota::per_second(limits.per_ip_per_second).allow_burst(limits.per_ip_burst);
        Self {
            users: RateLimiter::keyed(users),
            ips: RateLimiter::keyed(ips),
        }
    }

    /// Counts one request against `key`: `RATE_LIMITED` when over its quota.
    pub fn check(&self, key: RateKey<'_>) -> Result<(), Refusal> {
        let allowed = match key {
            RateKey::User(sub) => self.users.check_key(&sub.to_owned()).is_ok(),
            RateKey::Ip(ip) => self.ips.check_key(&ip).is_ok(),
        };
        if allowed {
            Ok(())
        } else {
            Err(Refusal::rate_limited())
        }
    }

    /// Forgets keys whose buckets are full again (bounds memory; call periodically).
    pub fn retain_recent(&self) {
        self.users.retain_recent();
        self.ips.retain_recent();
        self.users.shrink_to_fit();
        self.ips.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    #[test]
    fn each_key_has_its_own_bucket() {
        let one = NonZeroU32::MIN;
        let two = NonZeroU32::new(2).unwrap();
        let limit = RateLimit::new(RateLimits {
            per_user_per_second: one,
            per_user_burst: two,
            per_ip_per_second: one,
            per_ip_burst: one,
        });
        assert!(limit.check(RateKey::User("a")).is_ok());
        assert!(limit.check(RateKey::User("a")).is_ok());
        let refused = limit.check(RateKey::User("a")).unwrap_err();
        assert_eq!(refused.code, "RATE_LIMITED");
        assert_eq!(refused.status.as_u16(), 429);
        assert!(limit.check(RateKey::User("b")).is_ok(), "another user");
        let ip: IpAddr = [127, 0, 0, 1].into();
        assert!(limit.check(RateKey::Ip(ip)).is_ok());
        assert!(limit.check(RateKey::Ip(ip)).is_err());
        limit.retain_recent();
    }
}
