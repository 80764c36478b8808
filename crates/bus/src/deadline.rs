//! An optional deadline for `select!` loops that commit or flush a little after their work.

use tokio::time::Instant;

/// Resolves at `at`, or never when there is no deadline.
pub async fn reached(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn resolves_at_the_deadline_and_never_without_one() {
        let at = Instant::now() + Duration::from_millis(20);
        reached(Some(at)).await;
        assert!(Instant::now() >= at);
        let none = tokio::time::timeout(Duration::from_millis(50), reached(None)).await;
        assert!(none.is_err(), "no deadline never resolves");
    }
}
