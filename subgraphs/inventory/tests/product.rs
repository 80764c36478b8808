//! Given/when/then tests of the `Product` and `Reservation` aggregates: no I/O.

use eventstore::testing::AggregateTest;
use inventory::product::{
    HoldState, NewProduct, Product, ProductCommand as C, ProductError, ProductEvent as E,
    ProductId, ProductStatus,
};
use inventory::reservation::{
    Closing, Decision, Reservation, ReservationCommand as RC, ReservationEvent as RE,
};

fn id() -> ProductId {
    ProductId::parse("strawberry-cake").unwrap()
}

fn details() -> NewProduct {
    NewProduct {
        name: "Strawberry Cake".into(),
        description: "Fresh strawberries, light cream".into(),
        price: 32_000,
        category: "cake".into(),
        image_url: Some("https://img.example/strawberry.jpg".into()),
        initial_stock: 0,
    }
}

fn created() -> E {
    E::ProductCreated {
        product_id: id(),
        name: "Strawberry Cake".into(),
        description: "Fresh strawberries, light cream".into(),
        price: 32_000,
        category: "cake".into(),
        image_url: Some("https://img.example/strawberry.jpg".into()),
    }
}

fn reserved(r: &str, quantity: u32) -> E {
    E::StockReserved {
        reservation_id: r.into(),
        quantity,
    }
}

fn reserve(r: &str, quantity: i64) -> C {
    C::Reserve {
        reservation_id: r.into(),
        quantity,
    }
}

fn release(r: &str) -> C {
    C::Release {
        reservation_id: r.into(),
        sold: None,
    }
}

fn refund(r: &str, quantity: u32) -> C {
    C::Release {
        reservation_id: r.into(),
        sold: Some(quantity),
    }
}

fn commit(r: &str) -> C {
    C::Commit {
        reservation_id: r.into(),
    }
}

fn with_stock(n: u32) -> Vec<E> {
    vec![
        created(),
        E::Restocked {
            quantity: n,
            restock_id: None,
        },
    ]
}

#[test]
fn creates_a_product_with_its_initial_stock() {
    let state = AggregateTest::<Product>::given_no_previous_events()
        .when(C::Create {
            id: id(),
            details: NewProduct {
                initial_stock: 5,
                name: "  Strawberry Cake ".into(),
                ..details()
            },
        })
        .then_expect_events(vec![
            created(),
            E::Restocked {
                quantity: 5,
                restock_id: None,
            },
        ]);
    assert_eq!(state.name(), "Strawberry Cake");
    assert_eq!(state.on_hand(), 5);
    assert_eq!(state.status(), ProductStatus::OnSale);
}

#[test]
fn a_repeated_create_is_a_no_op_and_another_product_under_the_id_is_refused() {
    AggregateTest::<Product>::given(vec![created()])
        .when(C::Create {
            id: id(),
            details: details(),
        })
        .then_expect_events(vec![]);
    AggregateTest::<Product>::given(vec![created()])
        .when(C::Create {
            id: id(),
            details: NewProduct {
                price: 1,
                ..details()
            },
        })
        .then_expect_error(|e| matches!(e, ProductError::AlreadyExists(_)));
    // Recognised by the details it was created with, whatever happened since.
    let changed = vec![
        created(),
        E::PriceChanged {
            previous_price: 32_000,
            price: 30_000,
        },
    ];
    AggregateTest::<Product>::given(changed)
        .when(C::Create {
            id: id(),
            details: details(),
        })
        .then_expect_events(vec![]);
}

#[test]
fn validates_every_field_and_names_it() {
    let cases: Vec<(NewProduct, &str)> = vec![
        (
            NewProduct {
                price: 0,
                ..details()
            },
            "price",
        ),
        (
            NewProduct {
                price: 10_000_001,
                ..details()
            },
            "price",
        ),
        (
            NewProduct {
                name: "   ".into(),
                ..details()
            },
            "name",
        ),
        (
            NewProduct {
                name: "x".repeat(101),
                ..details()
            },
            "name",
        ),
        (
            NewProduct {
                category: "".into(),
                ..details()
            },
            "category",
        ),
        (
            NewProduct {
                description: "d".repeat(2_001),
                ..details()
            },
            "description",
        ),
        (
            NewProduct {
                image_url: Some("ftp://x".into()),
                ..details()
            },
            "image_url",
        ),
        (
            NewProduct {
                image_url: Some("https://a b".into()),
                ..details()
            },
            "image_url",
        ),
        // Nothing invisible: zero-width spaces, bidi overrides, line separators.
        (
            NewProduct {
                name: "\u{200B}".into(),
                ..details()
            },
            "name",
        ),
        (
            NewProduct {
                name: "\u{202E}ekaC".into(),
                ..details()
            },
            "name",
        ),
        (
            NewProduct {
                category: "cake\u{200B}".into(),
                ..details()
            },
            "category",
        ),
        (
            NewProduct {
                description: "two\u{2028}lines".into(),
                ..details()
            },
            "description",
        ),
        (
            NewProduct {
                name: "\u{200D}".into(),
                ..details()
            },
            "name",
        ),
        (
            NewProduct {
                name: "\u{3164}".into(),
                ..details()
            },
            "name",
        ),
        (
            NewProduct {
                name: "tag\u{E0067}".into(),
                ..details()
            },
            "name",
        ),
        // Tags after a black flag hide text unless they spell a known flag.
        (
            NewProduct {
                name: "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}\u{E0068}\u{E0069}".into(),
                ..details()
            },
            "name",
        ),
        (
            NewProduct {
                name: "\u{1F3F4}\u{E0068}\u{E0069}\u{E007F}".into(),
                ..details()
            },
            "name",
        ),
        (
            NewProduct {
                initial_stock: -1,
                ..details()
            },
            "initial_stock",
        ),
        (
            NewProduct {
                initial_stock: 10_001,
                ..details()
            },
            "initial_stock",
        ),
    ];
    for (details, field) in cases {
        AggregateTest::<Product>::given_no_previous_events()
            .when(C::Create { id: id(), details })
            .then_expect_error(|e| {
                matches!(e, ProductError::Invalid { field: f, .. } if *f == field)
                    && e.code() == "BAD_USER_INPUT"
            });
    }
    // Emoji sequences (joined by U+200D; Scotland's flag, of tag characters) and Korean are
    // names like any other.
    const SHOWN: &str =
        "딸기 케이크 👩\u{200D}🍳 \u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}";
    AggregateTest::<Product>::given_no_previous_events()
        .when(C::Create {
            id: id(),
            details: NewProduct {
                name: SHOWN.into(),
                description: "line one\nline two".into(),
                ..details()
            },
        })
        .then_expect_events(vec![E::ProductCreated {
            product_id: id(),
            name: SHOWN.into(),
            description: "line one\nline two".into(),
            price: 32_000,
            category: "cake".into(),
            image_url: Some("https://img.example/strawberry.jpg".into()),
        }]);
    assert!(ProductId::parse("a/b").is_err());
    assert!(ProductId::parse("").is_err());
    assert!(ProductId::parse(&"x".repeat(65)).is_err());
}

#[test]
fn a_price_is_positive_and_at_most_ten_million_won() {
    let state = AggregateTest::<Product>::given(vec![created()])
        .when(C::ChangePrice { price: 10_000_000 })
        .then_expect_events(vec![E::PriceChanged {
            previous_price: 32_000,
            price: 10_000_000,
        }]);
    assert_eq!(state.price(), 10_000_000);
    AggregateTest::<Product>::given(vec![created()])
        .when(C::ChangePrice { price: 32_000 })
        .then_expect_events(vec![]);
    AggregateTest::<Product>::given(vec![created()])
        .when(C::ChangePrice { price: -5 })
        .then_expect_error_message("invalid price: must be 1..=10000000 KRW, got -5");
    AggregateTest::<Product>::given_no_previous_events()
        .when(C::ChangePrice { price: 100 })
        .then_expect_error(|e| *e == ProductError::NotFound);
}

#[test]
fn restocks_between_one_and_ten_thousand_units() {
    let state = AggregateTest::<Product>::given(with_stock(3))
        .when(C::Restock {
            quantity: 10_000,
            restock_id: None,
        })
        .then_expect_events(vec![E::Restocked {
            quantity: 10_000,
            restock_id: None,
        }]);
    assert_eq!(state.on_hand(), 10_003);
    for bad in [0, -1, 10_001] {
        AggregateTest::<Product>::given(vec![created()])
            .when(C::Restock {
                quantity: bad,
                restock_id: None,
            })
            .then_expect_error(|e| {
                matches!(
                    e,
                    ProductError::Invalid {
                        field: "quantity",
                        ..
                    }
                )
            });
    }
}

/// A restock asked again with its idempotency key (a retry after an error or a timeout) adds
/// nothing more, the same key for another quantity is refused, and only the latest keys are
/// remembered.
#[test]
fn a_keyed_restock_adds_its_units_once() {
    let keyed = |quantity: i64, key: &str| C::Restock {
        quantity,
        restock_id: Some(key.into()),
    };
    let done = E::Restocked {
        quantity: 5,
        restock_id: Some("k-1".into()),
    };
    let state = AggregateTest::<Product>::given(with_stock(3))
        .when(keyed(5, "k-1"))
        .then_expect_events(vec![done.clone()]);
    assert_eq!(state.on_hand(), 8);
    let mut given = with_stock(3);
    given.push(done);
    AggregateTest::<Product>::given(given.clone())
        .when(keyed(5, "k-1"))
        .then_expect_events(vec![]);
    AggregateTest::<Product>::given(given.clone())
        .when(keyed(6, "k-1"))
        .then_expect_error(|e| {
            matches!(
                e,
                ProductError::Invalid {
                    field: "idempotency_key",
                    ..
                }
            )
        });
    // A key is 1 to 64 printable ASCII characters, whoever calls.
    for bad in [" ", "배송-1"] {
        AggregateTest::<Product>::given(given.clone())
            .when(keyed(5, bad))
            .then_expect_error(|e| {
                matches!(
                    e,
                    ProductError::Invalid {
                        field: "idempotency_key",
                        ..
                    }
                )
            });
    }
    AggregateTest::<Product>::given(given.clone())
        .when(keyed(5, "k-2"))
        .then_expect_events(vec![E::Restocked {
            quantity: 5,
            restock_id: Some("k-2".into()),
        }]);
    // After as many other keyed restocks as it remembers, the first key is new again.
    for n in 0..inventory::product::RESTOCKS_REMEMBERED {
        given.push(E::Restocked {
            quantity: 1,
            restock_id: Some(format!("other-{n}")),
        });
    }
    AggregateTest::<Product>::given(given)
        .when(keyed(5, "k-1"))
        .then_expect_events(vec![E::Restocked {
            quantity: 5,
            restock_id: Some("k-1".into()),
        }]);
}

#[test]
fn discontinues_once_and_then_refuses_to_sell() {
    let state = AggregateTest::<Product>::given(with_stock(3))
        .when(C::Discontinue)
        .then_expect_events(vec![E::ProductDiscontinued]);
    assert_eq!(state.status(), ProductStatus::Discontinued);
    let mut given = with_stock(3);
    given.push(E::ProductDiscontinued);
    AggregateTest::<Product>::given(given.clone())
        .when(C::Discontinue)
        .then_expect_events(vec![]);
    AggregateTest::<Product>::given(given.clone())
        .when(reserve("r-1", 1))
        .then_expect_error(|e| {
            e.code() == "NOT_ON_SALE"
                && e.to_string() == "'Strawberry Cake' is discontinued and no longer sold"
        });
    AggregateTest::<Product>::given(given)
        .when(C::Restock {
            quantity: 1,
            restock_id: None,
        })
        .then_expect_error(|e| e.code() == "NOT_ON_SALE");
}

#[test]
fn reserves_what_is_available_and_derives_sold_out() {
    let state = AggregateTest::<Product>::given(with_stock(3))
        .when(reserve("r-1", 3))
        .then_expect_events(vec![reserved("r-1", 3)]);
    assert_eq!(
        (state.on_hand(), state.reserved(), state.available()),
        (3, 3, 0)
    );
    assert_eq!(state.status(), ProductStatus::SoldOut);
    assert_eq!(
        state.hold("r-1").map(|h| h.state),
        Some(HoldState::Reserved)
    );
}

#[test]
fn refuses_to_oversell_with_a_clear_message() {
    let mut given = with_stock(5);
    given.push(reserved("r-1", 3));
    AggregateTest::<Product>::given(given.clone())
        .when(reserve("r-2", 3))
        .then_expect_error_message("only 2 of 'Strawberry Cake' left, 3 requested");
    given.push(reserved("r-2", 2));
    AggregateTest::<Product>::given(given)
        .when(reserve("r-3", 1))
        .then_expect_error(|e| {
            e.code() == "OUT_OF_STOCK"
                && e.to_string() == "'Strawberry Cake' is sold out, 1 requested"
        });
    AggregateTest::<Product>::given_no_previous_events()
        .when(reserve("r-1", 1))
        .then_expect_error(|e| *e == ProductError::NotFound);
    AggregateTest::<Product>::given(with_stock(5))
        .when(reserve("r-1", 0))
        .then_expect_error(|e| e.code() == "BAD_USER_INPUT");
    AggregateTest::<Product>::given(with_stock(5))
        .when(reserve("bad id", 1))
        .then_expect_error(|e| {
            matches!(
                e,
                ProductError::Invalid {
                    field: "reservation_id",
                    ..
                }
            )
        });
}

#[test]
fn a_held_reservation_is_never_held_twice_and_is_forgotten_once_closed() {
    let mut given = with_stock(5);
    given.push(reserved("r-1", 2));
    let state = AggregateTest::<Product>::given(given.clone())
        .when(reserve("r-1", 2))
        .then_expect_events(vec![]);
    assert_eq!((state.reserved(), state.open_holds()), (2, 1));
    // The reservation's own stream refuses a late reserve (crate::stock); the product keeps
    // only open holds, so its state does not grow with every order it ever sold.
    given.push(E::StockReleased {
        reservation_id: "r-1".into(),
        quantity: 2,
        after_commit: false,
    });
    given.push(reserved("r-2", 1));
    given.push(E::StockCommitted {
        reservation_id: "r-2".into(),
        quantity: 1,
    });
    let state = AggregateTest::<Product>::given(given)
        .when(C::Discontinue)
        .then_expect_events(vec![E::ProductDiscontinued]);
    assert_eq!(
        (state.on_hand(), state.reserved(), state.open_holds()),
        (4, 0, 0)
    );
    assert_eq!(state.hold("r-1"), None);
    assert_eq!(state.hold("r-2"), None);
}

#[test]
fn releases_held_units_once() {
    let mut given = with_stock(5);
    given.push(reserved("r-1", 2));
    let released = E::StockReleased {
        reservation_id: "r-1".into(),
        quantity: 2,
        after_commit: false,
    };
    let state = AggregateTest::<Product>::given(given.clone())
        .when(release("r-1"))
        .then_expect_events(vec![released.clone()]);
    assert_eq!((state.on_hand(), state.reserved()), (5, 0));
    given.push(released);
    AggregateTest::<Product>::given(given)
        .when(release("r-1"))
        .then_expect_events(vec![]);
    AggregateTest::<Product>::given(with_stock(5))
        .when(release("unknown"))
        .then_expect_events(vec![]);
}

#[test]
fn commits_held_units_once_and_a_release_after_commit_returns_them() {
    let mut given = with_stock(5);
    given.push(reserved("r-1", 2));
    let committed = E::StockCommitted {
        reservation_id: "r-1".into(),
        quantity: 2,
    };
    let state = AggregateTest::<Product>::given(given.clone())
        .when(commit("r-1"))
        .then_expect_events(vec![committed.clone()]);
    assert_eq!(
        (state.on_hand(), state.reserved(), state.available()),
        (3, 0, 3)
    );
    given.push(committed);
    AggregateTest::<Product>::given(given.clone())
        .when(commit("r-1"))
        .then_expect_events(vec![]);
    // Once committed the hold is gone: a plain release gives nothing back, a refund (the
    // reservation knows it bought 2) returns the units on hand.
    AggregateTest::<Product>::given(given.clone())
        .when(release("r-1"))
        .then_expect_events(vec![]);
    let state = AggregateTest::<Product>::given(given)
        .when(refund("r-1", 2))
        .then_expect_events(vec![E::StockReleased {
            reservation_id: "r-1".into(),
            quantity: 2,
            after_commit: true,
        }]);
    assert_eq!((state.on_hand(), state.reserved()), (5, 0));
    assert_eq!(state.hold("r-1"), None);
    AggregateTest::<Product>::given(with_stock(5))
        .when(commit("unknown"))
        .then_expect_events(vec![]);
}

#[test]
fn events_have_stable_past_tense_types() {
    use eventstore::DomainEvent as _;
    assert_eq!(created().event_type(), "ProductCreated");
    assert_eq!(E::ProductDiscontinued.event_type(), "ProductDiscontinued");
    let json = serde_json::to_value(reserved("r-1", 2)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"type": "StockReserved", "reservation_id": "r-1", "quantity": 2})
    );
}

fn line(p: &str, q: u32) -> inventory::reservation::ReservedLine {
    inventory::reservation::ReservedLine {
        product_id: ProductId::parse(p).unwrap(),
        quantity: q,
    }
}

fn opened() -> RE {
    RE::ReservationOpened {
        order_id: "o-1".into(),
        lines: vec![line("a", 1), line("b", 2)],
    }
}

#[test]
fn a_reservation_opens_once_and_its_first_decision_wins() {
    let open = RC::Open {
        order_id: "o-1".into(),
        lines: vec![line("a", 1), line("b", 2)],
    };
    AggregateTest::<Reservation>::given_no_previous_events()
        .when(open.clone())
        .then_expect_events(vec![opened()]);
    AggregateTest::<Reservation>::given(vec![opened()])
        .when(open)
        .then_expect_events(vec![]);
    let state = AggregateTest::<Reservation>::given(vec![opened()])
        .when(RC::Decide(Decision::Reserved))
        .then_expect_events(vec![RE::ReservationConfirmed]);
    assert_eq!(state.decision(), Some(&Decision::Reserved));
    AggregateTest::<Reservation>::given(vec![opened(), RE::ReservationConfirmed])
        .when(RC::Decide(Decision::Rejected {
            reason: "late".into(),
        }))
        .then_expect_events(vec![]);
}

#[test]
fn a_reservation_released_before_its_decision_is_rejected() {
    let released = RE::ReservationReleased {
        after_commit: false,
    };
    AggregateTest::<Reservation>::given(vec![opened(), released.clone()])
        .when(RC::Decide(Decision::Reserved))
        .then_expect_events(vec![RE::ReservationRejected {
            reason: "the reservation was cancelled before stock could be reserved".into(),
        }]);
    // Released before it was ever opened: a late reserve records nothing.
    let state = AggregateTest::<Reservation>::given_no_previous_events()
        .when(RC::Release)
        .then_expect_events(vec![released.clone()]);
    assert_eq!(state.closing(), Some(Closing::Released));
    AggregateTest::<Reservation>::given(vec![released])
        .when(RC::Open {
            order_id: "o-1".into(),
            lines: vec![line("a", 1)],
        })
        .then_expect_events(vec![]);
}

#[test]
fn only_a_reserved_open_reservation_commits_and_release_after_commit_is_a_refund() {
    let reserved = vec![opened(), RE::ReservationConfirmed];
    AggregateTest::<Reservation>::given(reserved.clone())
        .when(RC::Commit)
        .then_expect_events(vec![RE::ReservationCommitted]);
    let mut committed = reserved.clone();
    committed.push(RE::ReservationCommitted);
    AggregateTest::<Reservation>::given(committed.clone())
        .when(RC::Commit)
        .then_expect_events(vec![]);
    AggregateTest::<Reservation>::given(committed)
        .when(RC::Release)
        .then_expect_events(vec![RE::ReservationReleased { after_commit: true }]);
    AggregateTest::<Reservation>::given(vec![
        opened(),
        RE::ReservationRejected {
            reason: "sold out".into(),
        },
    ])
    .when(RC::Commit)
    .then_expect_error_message("reservation cannot be committed: it was rejected");
    AggregateTest::<Reservation>::given_no_previous_events()
        .when(RC::Commit)
        .then_expect_error(|e| e.code() == "NOT_COMMITTABLE");
    let mut released = reserved;
    released.push(RE::ReservationReleased {
        after_commit: false,
    });
    AggregateTest::<Reservation>::given(released.clone())
        .when(RC::Release)
        .then_expect_events(vec![]);
    AggregateTest::<Reservation>::given(released)
        .when(RC::Commit)
        .then_expect_error_message("reservation cannot be committed: it was released");
}
