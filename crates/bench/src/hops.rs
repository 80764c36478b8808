//! Where an order's time goes between components, read back from the event store after a run:
//! every event carries the time it was recorded, so the gap between the event one component
//! wrote and the next component's reaction is the time the hop took (the relay, Kafka, a
//! consumer's queue and its handling).
//!
//! The event types and stream names are the ordering flow's as of this writing; a hop whose
//! events are not found is simply absent from the result.

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use sqlx::PgPool;

use crate::spectator::Seen;

/// The hops, in the order an order passes them, with a description of what each one covers.
pub const HOPS: [(&str, &str); 7] = [
    (
        "a",
        "OrderPlaced -> saga step (0 when placeOrder starts the saga in the same append)",
    ),
    (
        "b",
        "saga step -> ReservationOpened (command over Kafka, inventory worker)",
    ),
    (
        "c",
        "ReservationConfirmed -> OrderStockReserved (reply over Kafka, saga consumer)",
    ),
    (
        "d",
        "OrderStockReserved -> PaymentRequestReceived (client sees PAYMENT_PENDING, payable read model, confirm call)",
    ),
    (
        "e",
        "PaymentRequestReceived -> PaymentConfirmed (Toss over HTTP, payment append)",
    ),
    (
        "f",
        "PaymentConfirmed -> OrderPaid (payment's notice over Kafka, saga consumer)",
    ),
    (
        "g",
        "OrderPaid -> StockCommitted (command over Kafka, inventory worker; after PAID)",
    ),
];

/// One hop's figures, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Hop {
    /// What the hop covers.
    pub description: &'static str,
    /// Orders in which it was seen.
    pub count: i64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

const QUERY: &str = "
WITH placed AS (
    SELECT substr(stream_id, 7) AS id, recorded_at AS placed
    FROM es_events
    WHERE event_type = 'OrderPlaced' AND stream_id LIKE 'order-%'
      AND recorded_at >= $1 AND recorded_at < $2
), times AS (
    SELECT p.placed,
        (SELECT min(recorded_at) FROM es_events e WHERE e.stream_id = 'saga-order:' || p.id) AS saga,
        (SELECT min(recorded_at) FROM es_events e WHERE e.stream_id = 'inventory-reservation:' || p.id
            AND e.event_type = 'ReservationOpened') AS opened,
        (SELECT min(recorded_at) FROM es_events e WHERE e.stream_id = 'inventory-reservation:' || p.id
            AND e.event_type = 'ReservationConfirmed') AS confirmed,
        (SELECT min(recorded_at) FROM es_events e WHERE e.stream_id = 'order-' || p.id
            AND e.event_type = 'OrderStockReserved') AS reserved,
        (SELECT min(recorded_at) FROM es_events e WHERE e.stream_id = 'payment-' || p.id
            AND e.event_type = 'PaymentRequestReceived') AS requested,
        (SELECT min(recorded_at) FROM es_events e WHERE e.stream_id = 'payment-' || p.id
            AND e.event_type = 'PaymentConfirmed') AS paid_toss,
        (SELECT min(recorded_at) FROM es_events e WHERE e.stream_id = 'order-' || p.id
            AND e.event_type = 'OrderPaid') AS paid,
        (SELECT min(recorded_at) FROM es_events e WHERE e.stream_id = 'inventory-reservation:' || p.id
            AND e.event_type = 'ReservationCommitted') AS committed
    FROM placed p
), gaps AS (
    SELECT hop, extract(epoch FROM gap)::float8 * 1000 AS ms
    FROM times, LATERAL (VALUES
        ('a', saga - placed),
        ('b', opened - saga),
        ('c', reserved - confirmed),
        ('d', requested - reserved),
        ('e', paid_toss - requested),
        ('f', paid - paid_toss),
        ('g', committed - paid)
    ) AS h(hop, gap)
    WHERE gap IS NOT NULL
)
SELECT hop, count(*),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
    percentile_cont(0.99) WITHIN GROUP (ORDER BY ms),
    max(ms)
FROM gaps GROUP BY hop ORDER BY hop";

/// The hops of the orders placed between `from` and `until`, in flow order.
pub async fn measure(
    pool: &PgPool,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<Hop>, sqlx::Error> {
    let rows: Vec<(String, i64, f64, f64, f64)> = sqlx::query_as(QUERY)
        .bind(from)
        .bind(until)
        .fetch_all(pool)
        .await?;
    Ok(HOPS
        .iter()
        .filter_map(|(key, description)| {
            let (_, count, p50_ms, p99_ms, max_ms) = rows.iter().find(|r| r.0 == *key)?;
            Some(Hop {
                description,
                count: *count,
                p50_ms: *p50_ms,
                p99_ms: *p99_ms,
                max_ms: *max_ms,
            })
        })
        .collect())
}

/// Events appended between `from` and `until`, by type, most frequent first.
pub async fn events_by_type(
    pool: &PgPool,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT event_type, count(*) FROM es_events WHERE recorded_at >= $1 AND recorded_at < $2 \
         GROUP BY event_type ORDER BY count(*) DESC, event_type",
    )
    .bind(from)
    .bind(until)
    .fetch_all(pool)
    .await
}

/// How long the events the spectator noted took from their commit to arriving from Kafka, for
/// those committed between `from` and `until` (the relay's and Kafka's share of hops a and f),
/// and how long its synchronous offset commits took in that window.
pub fn deliveries(seen: &Seen, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<Hop> {
    let described = [
        (
            "OrderPlaced",
            "OrderPlaced -> delivered from Kafka to a spare consumer (relay, Kafka: part of a)",
        ),
        (
            "PaymentConfirmed",
            "PaymentConfirmed -> delivered from Kafka to a spare consumer (relay, Kafka: part of f)",
        ),
    ];
    let mut out: Vec<Hop> = described
        .iter()
        .filter_map(|(event_type, description)| {
            let gaps = seen
                .arrivals
                .iter()
                .filter(|(t, recorded, _)| {
                    t == event_type && *recorded >= from && *recorded < until
                })
                .map(|(_, recorded, arrived)| {
                    (*arrived - *recorded).num_microseconds().unwrap_or(0)
                });
            summarize(description, gaps)
        })
        .collect();
    let commits = seen
        .commits
        .iter()
        .filter(|(at, _)| *at >= from && *at < until)
        .map(|(_, took)| i64::try_from(took.as_micros()).unwrap_or(i64::MAX));
    out.extend(summarize(
        "synchronous Kafka offset commit of a spare consumer (every worker does one per message)",
        commits,
    ));
    out
}

/// A hop from durations in microseconds; `None` when there are none.
fn summarize(description: &'static str, micros: impl Iterator<Item = i64>) -> Option<Hop> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).ok()?;
    for us in micros {
        h.saturating_record(u64::try_from(us.max(0)).unwrap_or(0));
    }
    if h.is_empty() {
        return None;
    }
    let ms = |us: u64| us as f64 / 1_000.0;
    Some(Hop {
        description,
        count: i64::try_from(h.len()).unwrap_or(i64::MAX),
        p50_ms: ms(h.value_at_quantile(0.5)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_count_only_the_window() {
        let t = |ms: i64| DateTime::<Utc>::from_timestamp_millis(1_000_000 + ms).unwrap();
        let seen = Seen {
            arrivals: vec![
                ("OrderPlaced".to_owned(), t(0), t(5)),
                ("OrderPlaced".to_owned(), t(10), t(30)),
                ("OrderPlaced".to_owned(), t(500), t(900)),
                ("PaymentConfirmed".to_owned(), t(20), t(21)),
            ],
            commits: vec![
                (t(50), std::time::Duration::from_millis(3)),
                (t(200), std::time::Duration::from_millis(9)),
            ],
        };
        let hops = deliveries(&seen, t(0), t(100));
        assert_eq!(hops.len(), 3);
        assert_eq!(hops[0].count, 2);
        assert!((hops[0].max_ms - 20.0).abs() < 0.1, "{hops:?}");
        assert_eq!(hops[1].count, 1);
        assert_eq!(hops[2].count, 1);
        assert!((hops[2].p50_ms - 3.0).abs() < 0.1, "{hops:?}");
    }
}
