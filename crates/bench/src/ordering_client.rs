//! One benchmark client: places orders one after another and takes each to PAID as the app
//! would (place, wait for PAYMENT_PENDING, pay through Toss, wait for PAID), timing every stage.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auth::Identity;
use bloody_sweet::ordering::Ordering;
use hdrhistogram::Histogram;
use order::service::OrderService;
use order::{Order, OrderStatus};
use payment::toss::server::TossTestServer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::order_watch::{OrderWatch, Watched};

/// Wait between confirms refused with `ORDER_NOT_FOUND` (the payable read model lags).
const CONFIRM_RETRY: Duration = Duration::from_millis(20);
/// Pause after a failed order, so a persistent failure does not spin.
const AFTER_FAILURE: Duration = Duration::from_millis(50);
/// Highest latency the histograms hold, in microseconds (one hour).
const HIGHEST_US: u64 = 3_600_000_000;

/// The stages of one order, in order; their durations add up to the order's latency.
pub const STAGES: [&str; 4] = [
    "place call",
    "placed -> PAYMENT_PENDING",
    "confirm call",
    "confirmed -> PAID",
];

/// What every client shares.
pub struct Shared {
    /// The components under test.
    pub ordering: Ordering,
    /// The Toss test server, which mints payment keys as the payment widget would.
    pub toss: TossTestServer,
    /// Wakes a client when its order changes.
    pub watch: Arc<OrderWatch>,
    /// Ids of the products on sale.
    pub products: Vec<String>,
    /// End of the warm-up: orders reaching PAID from here on are measured.
    pub measure_from: Instant,
    /// End of the measurement: no order is placed after it and none reaching PAID counts.
    pub measure_until: Instant,
    /// Longest an order may take before it counts as failed.
    pub order_timeout: Duration,
    /// Longest wait for a change signal before the order is read again anyway.
    pub fallback_poll: Duration,
}

/// What one client (or all, merged) saw.
pub struct ClientStats {
    /// Latency from the place call to observing PAID, in microseconds, of measured orders.
    pub total: Histogram<u64>,
    /// Duration of each of [`STAGES`], in microseconds, of measured orders.
    pub stages: Vec<Histogram<u64>>,
    /// Orders that reached PAID inside the measured window.
    pub completed: u64,
    /// Orders that reached PAID during the warm-up or after the window.
    pub completed_outside: u64,
    /// Failures from the end of the warm-up on, by (stage, code).
    pub errors: BTreeMap<(&'static str, String), u64>,
    /// Failures during the warm-up.
    pub warmup_errors: u64,
    /// Confirms refused with `ORDER_NOT_FOUND` and retried.
    pub confirm_retries: u64,
    /// Reads of an order while waiting for a status.
    pub reads: u64,
    /// Waits ended by a change signal.
    pub signalled: u64,
    /// Waits ended by the fallback interval.
    pub fallbacks: u64,
}

impl ClientStats {
    fn new() -> Self {
        Self {
            total: histogram(),
            stages: STAGES.iter().map(|_| histogram()).collect(),
            completed: 0,
            completed_outside: 0,
            errors: BTreeMap::new(),
            warmup_errors: 0,
            confirm_retries: 0,
            reads: 0,
            signalled: 0,
            fallbacks: 0,
        }
    }

    /// Stats of no client, to merge others into.
    pub fn empty() -> Self {
        Self::new()
    }

    /// Adds `other`'s figures to these.
    pub fn merge(&mut self, other: &Self) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.total.add(&other.total);
        for (mine, theirs) in self.stages.iter_mut().zip(&other.stages) {
            let _ = mine.add(theirs);
        }
        self.completed += other.completed;
        self.completed_outside += other.completed_outside;
        for (key, n) in &other.errors {
            *self.errors.entry(key.clone()).or_default() += n;
        }
        self.warmup_errors += other.warmup_errors;
        self.confirm_retries += other.confirm_retries;
        self.reads += other.reads;
        self.signalled += other.signalled;
        self.fallbacks += other.fallbacks;
    }

    fn record(&mut self, t: &Timings, shared: &Shared) {
        if t.paid < shared.measure_from || t.paid > shared.measure_until {
            self.completed_outside += 1;
            return;
        }
        self.completed += 1;
        let bounds = [t.started, t.placed, t.pending, t.confirmed, t.paid];
        for (histogram, pair) in self.stages.iter_mut().zip(bounds.windows(2)) {
            histogram.saturating_record(micros(pair[1] - pair[0]));
        }
        self.total.saturating_record(micros(t.paid - t.started));
    }

    fn fail(&mut self, failure: Failure, shared: &Shared) {
        if failure.at < shared.measure_from {
            self.warmup_errors += 1;
        } else {
            *self
                .errors
                .entry((failure.stage, failure.code))
                .or_default() += 1;
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// When one order passed each stage.
struct Timings {
    started: Instant,
    placed: Instant,
    pending: Instant,
    confirmed: Instant,
    paid: Instant,
}

/// Why an order did not reach PAID.
struct Failure {
    stage: &'static str,
    code: String,
    at: Instant,
}

impl Failure {
    fn new(stage: &'static str, code: impl Into<String>) -> Self {
        Self {
            stage,
            code: code.into(),
            at: Instant::now(),
        }
    }
}

/// Runs client number `client` until the measured window ends; returns what it saw.
pub async fn run(client: usize, shared: Arc<Shared>) -> ClientStats {
    let me = Client {
        who: Identity::customer(format!("bench-{client}")),
        shared,
    };
    let mut rng = StdRng::seed_from_u64(client as u64);
    let mut stats = ClientStats::new();
    while Instant::now() < me.shared.measure_until {
        let product = &me.shared.products[rng.random_range(0..me.shared.products.len())];
        let quantity = rng.random_range(1..=2);
        match me.one_order(product, quantity, &mut stats).await {
            Ok(timings) => stats.record(&timings, &me.shared),
            Err(failure) => {
                stats.fail(failure, &me.shared);
                tokio::time::sleep(AFTER_FAILURE).await;
            }
        }
    }
    stats
}

struct Client {
    who: Identity,
    shared: Arc<Shared>,
}

impl Client {
    async fn one_order(
        &self,
        product: &str,
        quantity: u32,
        stats: &mut ClientStats,
    ) -> Result<Timings, Failure> {
        let shared = &self.shared;
        let key = uuid::Uuid::new_v4().to_string();
        let order_id = OrderService::order_id_for(&self.who.sub, &key);
        // Before placing, so no change signal of this order is missed.
        let watched = shared.watch.register(&order_id);
        let started = Instant::now();
        let deadline = started + shared.order_timeout;
        shared
            .ordering
            .orders
            .place(Some(&self.who), vec![(product.to_owned(), quantity)], &key)
            .await
            .map_err(|e| Failure::new("place", e.code()))?;
        let placed = Instant::now();
        let order = self
            .wait_for(
                &watched,
                &order_id,
                OrderStatus::PaymentPending,
                deadline,
                stats,
            )
            .await?;
        let pending = Instant::now();
        let payment_key = shared.toss.mint(&order.id, order.total);
        loop {
            match shared
                .ordering
                .payments
                .confirm(Some(&self.who), &order.id, &payment_key, order.total)
                .await
            {
                Ok(_) => break,
                // The payable read model may lag the order by a moment.
                Err(err) if err.code() == "ORDER_NOT_FOUND" && Instant::now() < deadline => {
                    stats.confirm_retries += 1;
                    tokio::time::sleep(CONFIRM_RETRY).await;
                }
                Err(err) => return Err(Failure::new("confirm", err.code())),
            }
        }
        let confirmed = Instant::now();
        self.wait_for(&watched, &order_id, OrderStatus::Paid, deadline, stats)
            .await?;
        Ok(Timings {
            started,
            placed,
            pending,
            confirmed,
            paid: Instant::now(),
        })
    }

    /// Waits until the order is `want`, reading it only when it changed (or after the fallback
    /// interval).
    async fn wait_for(
        &self,
        watched: &Watched,
        order_id: &str,
        want: OrderStatus,
        deadline: Instant,
        stats: &mut ClientStats,
    ) -> Result<Order, Failure> {
        let stage = match want {
            OrderStatus::Paid => "wait PAID",
            _ => "wait PAYMENT_PENDING",
        };
        loop {
            if watched.changed(self.shared.fallback_poll).await {
                stats.signalled += 1;
            } else {
                stats.fallbacks += 1;
            }
            stats.reads += 1;
            let order = self
                .shared
                .ordering
                .orders
                .get_at_least(Some(&self.who), order_id, watched.version())
                .await
                .map_err(|e| Failure::new(stage, e.code()))?;
            if order.status == want {
                return Ok(order);
            }
            if !on_the_way(order.status, want) {
                return Err(Failure::new(
                    stage,
                    format!("ORDER_{}", order.status.as_str()),
                ));
            }
            if Instant::now() >= deadline {
                return Err(Failure::new(stage, format!("TIMEOUT_{}", want.as_str())));
            }
        }
    }
}

/// Whether an order in `status` may still reach `want` without the client doing anything.
fn on_the_way(status: OrderStatus, want: OrderStatus) -> bool {
    match want {
        OrderStatus::PaymentPending => {
            matches!(status, OrderStatus::Placed | OrderStatus::StockReserved)
        }
        OrderStatus::Paid => status == OrderStatus::PaymentPending,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_on_the_way_keep_waiting_and_others_fail() {
        assert!(on_the_way(OrderStatus::Placed, OrderStatus::PaymentPending));
        assert!(on_the_way(
            OrderStatus::StockReserved,
            OrderStatus::PaymentPending
        ));
        assert!(!on_the_way(
            OrderStatus::Rejected,
            OrderStatus::PaymentPending
        ));
        assert!(on_the_way(OrderStatus::PaymentPending, OrderStatus::Paid));
        assert!(!on_the_way(OrderStatus::Cancelled, OrderStatus::Paid));
    }

    #[test]
    fn merged_stats_add_up() {
        let mut a = ClientStats::empty();
        let mut b = ClientStats::empty();
        a.total.saturating_record(1_000);
        b.total.saturating_record(3_000);
        b.completed = 1;
        b.errors.insert(("place", "INTERNAL".into()), 2);
        a.merge(&b);
        assert_eq!(a.total.len(), 2);
        assert_eq!(a.completed, 1);
        assert_eq!(a.errors[&("place", "INTERNAL".to_owned())], 2);
    }
}
