//! Realistic events for the benchmarks: dessert-shop orders, stock movements and payments.
//!
//! Everything is generated before a phase's clock starts, so the figures measure the store and
//! not the generator. Bodies are small JSON objects of roughly 100–200 bytes, shaped like the
//! platform's own events; ids are UUID v7 as writers produce them.

use eventstore::{EventData, StreamId};
use serde_json::json;
use uuid::Uuid;

/// One append: a stream and the events written to it in one call.
pub type Append = (StreamId, Vec<EventData>);

/// Menu items with their prices in won.
const MENU: [(&str, u32); 8] = [
    ("strawberry-shortcake", 6_500),
    ("blood-orange-tart", 7_200),
    ("red-velvet-slice", 5_800),
    ("raspberry-macaron-box", 12_000),
    ("cherry-cheesecake", 6_900),
    ("chocolate-lava-cake", 7_500),
    ("mango-pudding", 4_800),
    ("vanilla-eclair", 3_900),
];

/// The stages of an order, one event each, in the order they happen.
const ORDER_STAGES: [&str; 5] = [
    "OrderPlaced",
    "PaymentAuthorized",
    "OrderAccepted",
    "OrderReady",
    "OrderPickedUp",
];

/// The events a single-append writer sends: whole order lifecycles, one event per append.
///
/// Returns one list per writer; each entry is an order stream and its events in order, to be
/// appended one at a time with the version the writer tracks. Writers get `total / writers`
/// events each (rounded down to whole appends).
pub fn order_lifecycles(writers: usize, total: usize) -> Vec<Vec<Append>> {
    let per_writer = total / writers.max(1);
    (0..writers)
        .map(|w| {
            let mut orders = Vec::new();
            let mut left = per_writer;
            let mut n = 0usize;
            while left > 0 {
                let stages = left.min(ORDER_STAGES.len());
                orders.push(order_events(w, n, stages));
                left -= stages;
                n += 1;
            }
            orders
        })
        .collect()
}

/// The first `stages` events of one order's life.
fn order_events(writer: usize, n: usize, stages: usize) -> Append {
    let order_id = Uuid::now_v7();
    let stream = StreamId::of("order", order_id).expect("uuid stream ids are valid");
    let store_id = format!("store-{:02}", (writer * 7 + n) % 24);
    let (sku, price) = MENU[(writer + n) % MENU.len()];
    let qty = 1 + (n % 3) as u32;
    let total = price * qty;
    let events = ORDER_STAGES[..stages]
        .iter()
        .map(|stage| {
            let data = match *stage {
                "OrderPlaced" => json!({
                    "order_id": order_id,
                    "store_id": store_id,
                    "customer_id": format!("cust-{:06}", (writer * 1_000 + n) % 250_000),
                    "items": [{"sku": sku, "qty": qty, "unit_price": price}],
                    "total": total,
                    "currency": "KRW",
                }),
                "PaymentAuthorized" => json!({
                    "order_id": order_id,
                    "payment_key": format!("tgen_{:020}", writer * 1_000_000 + n),
                    "amount": total,
                    "method": "card",
                }),
                "OrderAccepted" => json!({
                    "order_id": order_id,
                    "store_id": store_id,
                    "eta_minutes": 10 + n % 20,
                }),
                _ => json!({"order_id": order_id, "store_id": store_id, "at_counter": true}),
            };
            EventData::new(*stage, data)
        })
        .collect();
    (stream, events)
}

/// The batches a batched writer sends: `batch` events to a fresh stream per append.
///
/// Batches alternate between inventory ledgers (stock reserved and released per order) and
/// payment settlement ledgers, so the relay publishes to more than one topic. Returns one list
/// per writer with `total / (writers * batch)` batches each.
pub fn ledger_batches(writers: usize, total: usize, batch: usize) -> Vec<Vec<Append>> {
    let batch = batch.max(1);
    let per_writer = total / (writers.max(1) * batch);
    (0..writers)
        .map(|w| {
            (0..per_writer)
                .map(|b| {
                    if (w + b).is_multiple_of(2) {
                        inventory_batch(w, b, batch)
                    } else {
                        settlement_batch(w, b, batch)
                    }
                })
                .collect()
        })
        .collect()
}

fn inventory_batch(writer: usize, b: usize, batch: usize) -> Append {
    let store_id = format!("store-{:02}", (writer * 5 + b) % 24);
    let stream = StreamId::of("inventory", format!("{store_id}-{}", Uuid::now_v7()))
        .expect("inventory stream ids are valid");
    let mut remaining = 5_000u32;
    let events = (0..batch)
        .map(|i| {
            let (sku, _) = MENU[(b + i) % MENU.len()];
            let quantity = 1 + (i % 4) as u32;
            let (ty, verb) = if i % 10 == 9 {
                remaining += quantity;
                ("StockReleased", "released")
            } else {
                remaining = remaining.saturating_sub(quantity);
                ("StockReserved", "reserved")
            };
            EventData::new(
                ty,
                json!({
                    "store_id": store_id,
                    "sku": sku,
                    "order_id": Uuid::now_v7(),
                    "quantity": quantity,
                    "remaining": remaining,
                    "reason": verb,
                }),
            )
        })
        .collect();
    (stream, events)
}

fn settlement_batch(writer: usize, b: usize, batch: usize) -> Append {
    let stream = StreamId::of("payment", format!("settlement-{}", Uuid::now_v7()))
        .expect("payment stream ids are valid");
    let events = (0..batch)
        .map(|i| {
            let (_, price) = MENU[(writer + i) % MENU.len()];
            let amount = price * (1 + (i % 3) as u32);
            EventData::new(
                "PaymentCaptured",
                json!({
                    "order_id": Uuid::now_v7(),
                    "payment_key": format!("tgen_{:020}", (writer * 1_000 + b) * 1_000 + i),
                    "amount": amount,
                    "fee": amount / 40,
                    "currency": "KRW",
                }),
            )
        })
        .collect();
    (stream, events)
}

/// Number of events in a writer plan.
pub fn count_events(plan: &[Vec<Append>]) -> usize {
    plan.iter()
        .flat_map(|w| w.iter().map(|(_, events)| events.len()))
        .sum()
}

/// Mean size of the events' JSON bodies, in bytes.
pub fn mean_body_bytes(plans: &[&[Vec<Append>]]) -> usize {
    let (mut bytes, mut n) = (0usize, 0usize);
    for plan in plans {
        for (_, events) in plan.iter().flatten() {
            for event in events {
                bytes += event.data.to_string().len();
                n += 1;
            }
        }
    }
    bytes.checked_div(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_have_the_requested_sizes() {
        let single = order_lifecycles(16, 20_000);
        assert_eq!(single.len(), 16);
        assert_eq!(count_events(&single), 20_000);
        let batched = ledger_batches(4, 200_000, 100);
        assert_eq!(count_events(&batched), 200_000);
        assert!(batched.iter().flatten().all(|(_, e)| e.len() == 100));
    }

    #[test]
    fn bodies_are_small_json_objects() {
        let single = order_lifecycles(2, 100);
        let batched = ledger_batches(2, 1_000, 100);
        let mean = mean_body_bytes(&[&single, &batched]);
        assert!((80..=220).contains(&mean), "mean body is {mean} bytes");
    }
}
