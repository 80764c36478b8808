//! The saga's stock commands on real event stores (Postgres and SQLite): no oversell under
//! 200 concurrent orders, all-or-none across lines, idempotent redelivery, release after commit.

use std::sync::Arc;

use contracts::{Envelope, InventoryCommand, SagaReply, StockLine};
use eventstore::{EventStore, Metadata, PgEventStore, Position, SqliteEventStore};
use inventory::{Inventory, NewProduct, ProductId};

type Guard = Box<dyn std::any::Any + Send>;

async fn postgres() -> (Arc<dyn EventStore>, Guard) {
    let db = testkit::TestDb::new().await;
    let store = PgEventStore::connect(db.url(), 24).await.expect("connect");
    (Arc::new(store), Box::new(db))
}

async fn sqlite() -> (Arc<dyn EventStore>, Guard) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteEventStore::open(dir.path().join("events.db"))
        .await
        .expect("open");
    (Arc::new(store), Box::new(dir))
}

macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let (store, _guard) = super::postgres().await;
                    super::$case(store).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let (store, _guard) = super::sqlite().await;
                    super::$case(store).await;
                }
            )*
        }
    };
}

on_both!(
    two_hundred_concurrent_orders_never_oversell_ten_cakes,
    four_processes_racing_for_one_product_never_oversell,
    a_reservation_is_all_or_none_across_lines,
    redelivered_commands_get_the_same_reply_and_no_second_effect,
    a_release_after_commit_returns_the_units,
    a_release_before_the_reserve_makes_the_late_reserve_fail,
    each_command_writes_its_reservation_and_products_at_once,
    products_forget_closed_reservations,
    racing_reservations_hold_every_line_or_none,
);

fn pid(id: &str) -> ProductId {
    ProductId::parse(id).unwrap()
}

async fn product(inventory: &Inventory, id: &str, name: &str, stock: i64) {
    inventory
        .create_product(
            Some(pid(id)),
            NewProduct {
                name: name.into(),
                description: String::new(),
                price: 32_000,
                category: "cake".into(),
                image_url: None,
                initial_stock: stock,
            },
            Metadata::new(),
        )
        .await
        .expect("create product");
}

/// (on hand, reserved) of a product, from its events.
async fn stock(inventory: &Inventory, id: &str) -> (u32, u32) {
    let p = inventory.product(&pid(id)).await.unwrap().expect("exists");
    (p.on_hand(), p.reserved())
}

fn reserve(reservation: &str, lines: &[(&str, u32)]) -> Envelope<InventoryCommand> {
    Envelope::new(
        format!("order-{reservation}"),
        InventoryCommand::ReserveStock {
            reservation_id: reservation.into(),
            lines: lines
                .iter()
                .map(|(p, q)| StockLine {
                    product_id: (*p).into(),
                    quantity: *q,
                })
                .collect(),
        },
    )
}

fn release(reservation: &str) -> Envelope<InventoryCommand> {
    Envelope::new(
        format!("order-{reservation}"),
        InventoryCommand::ReleaseStock {
            reservation_id: reservation.into(),
        },
    )
}

fn commit(reservation: &str) -> Envelope<InventoryCommand> {
    Envelope::new(
        format!("order-{reservation}"),
        InventoryCommand::CommitStock {
            reservation_id: reservation.into(),
        },
    )
}

fn reserved(r: &str) -> SagaReply {
    SagaReply::StockReserved {
        reservation_id: r.into(),
    }
}

async fn two_hundred_concurrent_orders_never_oversell_ten_cakes(store: Arc<dyn EventStore>) {
    let inventory = Inventory::new(store);
    product(&inventory, "strawberry", "Strawberry Cake", 10).await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let inventory = inventory.clone();
            tokio::spawn(async move {
                inventory
                    .handle(reserve(&format!("r-{i}"), &[("strawberry", 1)]))
                    .await
            })
        })
        .collect();
    let mut reserved = 0;
    let mut rejected = Vec::new();
    for task in tasks {
        match task.await.expect("task").expect("handled") {
            SagaReply::StockReserved { .. } => reserved += 1,
            SagaReply::StockRejected { reason, .. } => rejected.push(reason),
            other => panic!("unexpected reply {other:?}"),
        }
    }
    assert_eq!(reserved, 10);
    assert_eq!(rejected.len(), 190);
    for reason in &rejected {
        assert_eq!(reason, "'Strawberry Cake' is sold out, 1 requested");
    }
    assert_eq!(stock(&inventory, "strawberry").await, (10, 10));
}

/// Services that do not share their in-process turns, like separate processes: only the event
/// store's expected-version check stands between them and overselling.
async fn four_processes_racing_for_one_product_never_oversell(store: Arc<dyn EventStore>) {
    let processes: Vec<Inventory> = (0..4).map(|_| Inventory::new(store.clone())).collect();
    product(&processes[0], "eclair", "Eclair", 10).await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let inventory = processes[i % 4].clone();
            tokio::spawn(async move {
                let lines = [("eclair", 1 + (i % 2) as u32)];
                inventory.handle(reserve(&format!("r-{i}"), &lines)).await
            })
        })
        .collect();
    let mut units = 0;
    for task in tasks {
        match task.await.expect("task").expect("handled") {
            SagaReply::StockReserved { reservation_id } => {
                let i: usize = reservation_id[2..].parse().unwrap();
                units += 1 + i % 2;
            }
            SagaReply::StockRejected { reason, .. } => assert!(
                reason.contains("sold out") || reason.starts_with("only 1 of 'Eclair' left"),
                "{reason}"
            ),
            other => panic!("unexpected reply {other:?}"),
        }
    }
    let (on_hand, reserved) = stock(&processes[1], "eclair").await;
    assert_eq!(on_hand, 10);
    assert_eq!(reserved as usize, units);
    assert!(units >= 9, "only {units} of 10 units sold");
}

async fn a_reservation_is_all_or_none_across_lines(store: Arc<dyn EventStore>) {
    let inventory = Inventory::new(store);
    product(&inventory, "a-cake", "Apple Cake", 5).await;
    product(&inventory, "b-tart", "Blueberry Tart", 2).await;
    let reply = inventory
        .handle(reserve("r-1", &[("b-tart", 3), ("a-cake", 2)]))
        .await
        .unwrap();
    assert_eq!(
        reply,
        SagaReply::StockRejected {
            reservation_id: "r-1".into(),
            reason: "only 2 of 'Blueberry Tart' left, 3 requested".into(),
        }
    );
    assert_eq!(
        stock(&inventory, "a-cake").await,
        (5, 0),
        "first line given back"
    );
    assert_eq!(stock(&inventory, "b-tart").await, (2, 0));

    // Unknown products and malformed lines are refused with a reason, holding nothing.
    let reply = inventory
        .handle(reserve("r-2", &[("a-cake", 1), ("nope", 1)]))
        .await
        .unwrap();
    assert!(
        matches!(&reply, SagaReply::StockRejected { reason, .. } if reason == "product nope does not exist"),
        "{reply:?}"
    );
    for (id, lines) in [
        ("r-3", vec![("a-cake", 0)]),
        ("r-4", vec![("a-cake", 100)]),
        ("r-5", vec![("../etc", 1)]),
        ("r 6", vec![("a-cake", 1)]),
        ("r-7", vec![]),
    ] {
        let reply = inventory.handle(reserve(id, &lines)).await.unwrap();
        assert!(
            matches!(reply, SagaReply::StockRejected { .. }),
            "{id}: {reply:?}"
        );
    }
    assert_eq!(stock(&inventory, "a-cake").await, (5, 0));

    // Lines of the same product add up.
    let reply = inventory
        .handle(reserve(
            "r-8",
            &[("a-cake", 2), ("b-tart", 2), ("a-cake", 3)],
        ))
        .await
        .unwrap();
    assert_eq!(reply, reserved("r-8"));
    assert_eq!(stock(&inventory, "a-cake").await, (5, 5));
    assert_eq!(stock(&inventory, "b-tart").await, (2, 2));
}

async fn redelivered_commands_get_the_same_reply_and_no_second_effect(store: Arc<dyn EventStore>) {
    let inventory = Inventory::new(store);
    product(&inventory, "choux", "Choux Cream", 3).await;
    let first = reserve("r-1", &[("choux", 2)]);
    assert_eq!(
        inventory.handle(first.clone()).await.unwrap(),
        reserved("r-1")
    );
    assert_eq!(
        inventory.handle(first.clone()).await.unwrap(),
        reserved("r-1")
    );
    assert_eq!(stock(&inventory, "choux").await, (3, 2));

    // A rejection is remembered too, even once stock came back.
    let refused = reserve("r-2", &[("choux", 2)]);
    let reply = inventory.handle(refused.clone()).await.unwrap();
    assert!(matches!(reply, SagaReply::StockRejected { .. }));
    inventory
        .restock(&pid("choux"), 10, None, Metadata::new())
        .await
        .unwrap();
    assert_eq!(inventory.handle(refused).await.unwrap(), reply);
    assert_eq!(stock(&inventory, "choux").await, (13, 2));

    let released = SagaReply::StockReleased {
        reservation_id: "r-1".into(),
    };
    assert_eq!(inventory.handle(release("r-1")).await.unwrap(), released);
    assert_eq!(inventory.handle(release("r-1")).await.unwrap(), released);
    assert_eq!(stock(&inventory, "choux").await, (13, 0));
    // A late redelivery of the reserve keeps its answer but holds nothing again.
    assert_eq!(inventory.handle(first).await.unwrap(), reserved("r-1"));
    assert_eq!(stock(&inventory, "choux").await, (13, 0));

    let committed = SagaReply::StockCommitted {
        reservation_id: "r-3".into(),
    };
    inventory
        .handle(reserve("r-3", &[("choux", 4)]))
        .await
        .unwrap();
    assert_eq!(inventory.handle(commit("r-3")).await.unwrap(), committed);
    assert_eq!(inventory.handle(commit("r-3")).await.unwrap(), committed);
    assert_eq!(stock(&inventory, "choux").await, (9, 0));

    // Committing what was released or never reserved answers with a reason.
    let reply = inventory.handle(commit("r-1")).await.unwrap();
    assert_eq!(
        reply,
        SagaReply::StockRejected {
            reservation_id: "r-1".into(),
            reason: "reservation cannot be committed: it was released".into(),
        }
    );
    let reply = inventory.handle(commit("r-404")).await.unwrap();
    assert!(matches!(reply, SagaReply::StockRejected { .. }));
    let err = inventory.handle(release("bad id")).await.unwrap_err();
    assert_eq!(err.code(), "BAD_USER_INPUT");
}

async fn a_release_after_commit_returns_the_units(store: Arc<dyn EventStore>) {
    let inventory = Inventory::new(store);
    product(&inventory, "macaron", "Macaron Box", 4).await;
    product(&inventory, "tart", "Egg Tart", 4).await;
    let lines = [("macaron", 3), ("tart", 1)];
    assert_eq!(
        inventory.handle(reserve("r-1", &lines)).await.unwrap(),
        reserved("r-1")
    );
    inventory.handle(commit("r-1")).await.unwrap();
    assert_eq!(stock(&inventory, "macaron").await, (1, 0));
    assert_eq!(stock(&inventory, "tart").await, (3, 0));
    let reply = inventory.handle(release("r-1")).await.unwrap();
    assert_eq!(
        reply,
        SagaReply::StockReleased {
            reservation_id: "r-1".into()
        }
    );
    inventory.handle(release("r-1")).await.unwrap();
    assert_eq!(stock(&inventory, "macaron").await, (4, 0));
    assert_eq!(stock(&inventory, "tart").await, (4, 0));
}

async fn a_release_before_the_reserve_makes_the_late_reserve_fail(store: Arc<dyn EventStore>) {
    let inventory = Inventory::new(store);
    product(&inventory, "roll", "Swiss Roll", 4).await;
    inventory.handle(release("r-1")).await.unwrap();
    let reply = inventory
        .handle(reserve("r-1", &[("roll", 1)]))
        .await
        .unwrap();
    assert!(
        matches!(reply, SagaReply::StockRejected { .. }),
        "{reply:?}"
    );
    assert_eq!(stock(&inventory, "roll").await, (4, 0));
}

/// Reserve, commit and a refund each write the reservation and all its products in one append.
async fn each_command_writes_its_reservation_and_products_at_once(store: Arc<dyn EventStore>) {
    let inventory = Inventory::new(store.clone());
    product(&inventory, "a-cake", "Apple Cake", 5).await;
    product(&inventory, "b-tart", "Blueberry Tart", 5).await;
    let head = store.head().await.unwrap();
    let lines = [("b-tart", 2), ("a-cake", 1)];
    assert_eq!(
        inventory.handle(reserve("r-1", &lines)).await.unwrap(),
        reserved("r-1")
    );
    inventory.handle(commit("r-1")).await.unwrap();
    inventory.handle(release("r-1")).await.unwrap();
    // `$all` holds back while other tests' transactions run in the cluster: wait for all ten.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let events = loop {
        let events: Vec<_> = store
            .read_all(head, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| !matches!(e.event_type.as_str(), "ProductCreated" | "Restocked"))
            .collect();
        if events.len() >= 10 || std::time::Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let mut written: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.stream_id.as_str(), e.event_type.as_str()))
        .collect();
    // The store may order one write's streams as it likes (Postgres locks them in id order).
    written[..4].sort();
    written[4..7].sort();
    written[7..].sort();
    assert_eq!(
        written,
        [
            ("inventory-product:a-cake", "StockReserved"),
            ("inventory-product:b-tart", "StockReserved"),
            ("inventory-reservation:r-1", "ReservationConfirmed"),
            ("inventory-reservation:r-1", "ReservationOpened"),
            ("inventory-product:a-cake", "StockCommitted"),
            ("inventory-product:b-tart", "StockCommitted"),
            ("inventory-reservation:r-1", "ReservationCommitted"),
            ("inventory-product:a-cake", "StockReleased"),
            ("inventory-product:b-tart", "StockReleased"),
            ("inventory-reservation:r-1", "ReservationReleased"),
        ]
    );
    if store.adapter() == "postgres" {
        // A Postgres position is (writing transaction << 16) + ordinal: three writes in all.
        let transaction = |e: &eventstore::RecordedEvent| e.position.0 >> 16;
        let groups: Vec<u64> = events.iter().map(transaction).collect();
        assert!(groups[..4].iter().all(|t| *t == groups[0]), "{groups:?}");
        assert!(groups[4..7].iter().all(|t| *t == groups[4]), "{groups:?}");
        assert!(groups[7..].iter().all(|t| *t == groups[7]), "{groups:?}");
        assert!(groups[0] != groups[4] && groups[4] != groups[7]);
    }
    assert_eq!(stock(&inventory, "a-cake").await, (5, 0));
    assert_eq!(stock(&inventory, "b-tart").await, (5, 0));
    assert!(events.iter().all(|e| e.position > Position(0)));
}

/// A product keeps only its open holds: its state does not grow with every order it sold,
/// and redelivered commands for closed reservations still change nothing.
async fn products_forget_closed_reservations(store: Arc<dyn EventStore>) {
    let inventory = Inventory::new(store.clone());
    product(&inventory, "mille", "Mille Crepe", 100).await;
    for i in 0..30 {
        let id = format!("r-{i}");
        assert_eq!(
            inventory
                .handle(reserve(&id, &[("mille", 1)]))
                .await
                .unwrap(),
            reserved(&id)
        );
        if i % 2 == 0 {
            inventory.handle(commit(&id)).await.unwrap();
        } else {
            inventory.handle(release(&id)).await.unwrap();
        }
    }
    let open = inventory.handle(reserve("r-open", &[("mille", 3)])).await;
    assert_eq!(open.unwrap(), reserved("r-open"));

    // Late redeliveries: the reservations answer as before and nothing is held again.
    for i in [0, 1, 28, 29] {
        let id = format!("r-{i}");
        let reply = inventory.handle(reserve(&id, &[("mille", 1)])).await;
        assert_eq!(reply.unwrap(), reserved(&id));
        inventory.handle(commit(&id)).await.unwrap();
    }
    // Another process (empty caches, loading from the product's snapshot) agrees.
    for inventory in [inventory, Inventory::new(store)] {
        let product = inventory.product(&pid("mille")).await.unwrap().unwrap();
        assert_eq!(
            (product.on_hand(), product.reserved(), product.open_holds()),
            (85, 3, 1)
        );
        assert_eq!(product.hold("r-open").map(|h| h.quantity), Some(3));
        assert_eq!(product.hold("r-0"), None);
    }
}

/// Two-line reservations racing from four processes (no shared turns): every reservation holds
/// both of its lines or neither.
async fn racing_reservations_hold_every_line_or_none(store: Arc<dyn EventStore>) {
    let processes: Vec<Inventory> = (0..4).map(|_| Inventory::new(store.clone())).collect();
    product(&processes[0], "p-a", "Pistachio Cake", 10).await;
    product(&processes[0], "p-b", "Pear Tart", 10).await;
    let tasks: Vec<_> = (0..120)
        .map(|i| {
            let inventory = processes[i % 4].clone();
            tokio::spawn(async move {
                let lines = match i % 2 {
                    0 => [("p-a", 1), ("p-b", 1)],
                    _ => [("p-b", 1), ("p-a", 1)],
                };
                inventory.handle(reserve(&format!("r-{i}"), &lines)).await
            })
        })
        .collect();
    let mut held = 0;
    for task in tasks {
        match task.await.expect("task").expect("handled") {
            SagaReply::StockReserved { .. } => held += 1,
            SagaReply::StockRejected { reason, .. } => {
                assert!(reason.contains("sold out"), "{reason}")
            }
            other => panic!("unexpected reply {other:?}"),
        }
    }
    assert_eq!(held, 10);
    assert_eq!(stock(&processes[3], "p-a").await, (10, 10));
    assert_eq!(stock(&processes[3], "p-b").await, (10, 10));
}
