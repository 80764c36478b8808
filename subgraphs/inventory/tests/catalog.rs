//! The `products` read model on Postgres and SQLite: fed from the event store, filtered,
//! paginated with opaque cursors, looked up in batches, and rebuilt from scratch.

use std::sync::Arc;
use std::time::Duration;

use contracts::{Envelope, InventoryCommand, StockLine};
use eventstore::{EventStore, Metadata};
use inventory::{
    Catalog, Inventory, NewProduct, ProductCatalog, ProductFilter, ProductId, ProductStatus,
};
use projections::ReadModels;

use testkit::stores::{postgres, sqlite};

macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (store, models, _guard) = super::postgres().await;
                    super::$case(store, models).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (store, models, _guard) = super::sqlite().await;
                    super::$case(store, models).await;
                }
            )*
        }
    };
}

on_both!(
    lists_filters_and_pages_through_products,
    follows_stock_and_status,
    refuses_bad_page_arguments,
);

/// Runs the projection from the event store until the returned sender is dropped or fired.
fn follow(models: &ReadModels, store: &Arc<dyn EventStore>) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (models, store) = (models.clone(), store.clone());
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        projections::run_from_store(models, Arc::new(ProductCatalog), store, shutdown)
            .await
            .expect("projection runs");
    });
    stop
}

async fn create(inventory: &Inventory, id: &str, name: &str, category: &str, stock: i64) {
    inventory
        .create_product(
            Some(ProductId::parse(id).unwrap()),
            NewProduct {
                name: name.into(),
                description: format!("{name}, made today"),
                price: 5_000,
                category: category.into(),
                image_url: Some(format!("https://img.example/{id}.jpg")),
                initial_stock: stock,
            },
            Metadata::new(),
        )
        .await
        .unwrap();
}

async fn wait_until(
    catalog: &Catalog,
    what: &str,
    check: impl Fn(&inventory::ProductPage) -> bool,
) {
    let ok = testkit::eventually(Duration::from_secs(20), || async {
        let page = catalog.list(&ProductFilter::default(), 100, None).await;
        page.as_ref().map(&check).unwrap_or(false)
    })
    .await;
    assert!(ok, "read model never showed {what}");
}

fn names(page: &inventory::ProductPage) -> Vec<&str> {
    page.items.iter().map(|(_, p)| p.name.as_str()).collect()
}

async fn lists_filters_and_pages_through_products(store: Arc<dyn EventStore>, models: ReadModels) {
    let catalog = Catalog::open(models.clone()).await.unwrap();
    let _stop = follow(&models, &store);
    let inventory = Inventory::new(store.clone());
    create(&inventory, "p-5", "Eclair", "pastry", 3).await;
    create(&inventory, "p-1", "Apple Pie", "pie", 0).await;
    create(&inventory, "p-3", "Cheesecake", "cake", 2).await;
    create(&inventory, "p-2", "Banana Bread", "bread", 1).await;
    create(&inventory, "p-4", "Cheesecake", "cake", 5).await;
    // Reservation streams share the category; the catalog ignores them.
    let reply = inventory
        .handle(Envelope::new(
            "o-1",
            InventoryCommand::ReserveStock {
                reservation_id: "r-1".into(),
                lines: vec![StockLine {
                    product_id: "p-2".into(),
                    quantity: 1,
                }],
            },
        ))
        .await
        .unwrap();
    assert!(matches!(reply, contracts::SagaReply::StockReserved { .. }));
    wait_until(&catalog, "five products with p-2 reserved", |page| {
        page.items.len() == 5
            && page
                .items
                .iter()
                .any(|(_, p)| p.id == "p-2" && p.reserved == 1)
    })
    .await;
    // It keeps stream versions for the product streams it read and none for the reservation.
    let tracked: Vec<String> = sqlx::query_scalar(
        "SELECT stream_id FROM rm_stream_versions WHERE projection = 'products' ORDER BY stream_id",
    )
    .fetch_all(models.pool())
    .await
    .unwrap();
    assert_eq!(
        tracked,
        ["p-1", "p-2", "p-3", "p-4", "p-5"].map(|p| format!("inventory-product:{p}"))
    );

    // Pages of two in (name, id) order, with opaque cursors.
    let all = ProductFilter::default();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = catalog.list(&all, 2, after.as_deref()).await.unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|(_, p)| p.id.clone()));
        if !page.has_next_page {
            assert_eq!(page.items.len(), 1);
            break;
        }
        after = page.end_cursor().map(str::to_owned);
        assert!(!after.as_deref().unwrap().contains("Cheese"));
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["p-1", "p-2", "p-3", "p-4", "p-5"]);

    let cakes = ProductFilter {
        category: Some("cake".into()),
        on_sale_only: false,
    };
    let page = catalog.list(&cakes, 1, None).await.unwrap();
    assert_eq!(page.items[0].1.id, "p-3");
    assert!(page.has_next_page);
    let page = catalog.list(&cakes, 1, page.end_cursor()).await.unwrap();
    assert_eq!(page.items[0].1.id, "p-4");
    assert!(!page.has_next_page);

    let on_sale = ProductFilter {
        category: None,
        on_sale_only: true,
    };
    let page = catalog.list(&on_sale, 10, None).await.unwrap();
    assert_eq!(names(&page), ["Cheesecake", "Cheesecake", "Eclair"]);

    let found = catalog
        .get_many(&["p-4".into(), "nope".into(), "p-1".into()])
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found["p-4"].available(), 5);
    assert_eq!(found["p-1"].status, ProductStatus::SoldOut);
    assert_eq!(
        found["p-4"].image_url.as_deref(),
        Some("https://img.example/p-4.jpg")
    );
    assert_eq!(catalog.get("nope").await.unwrap(), None);
}

async fn follows_stock_and_status(store: Arc<dyn EventStore>, models: ReadModels) {
    let catalog = Catalog::open(models.clone()).await.unwrap();
    let stop = follow(&models, &store);
    let inventory = Inventory::new(store.clone());
    let id = ProductId::parse("tart").unwrap();
    create(&inventory, "tart", "Egg Tart", "pastry", 2).await;
    for (r, command) in [
        ("r-1", "reserve"),
        ("r-2", "reserve"),
        ("r-1", "commit"),
        ("r-1", "release"),
        ("r-2", "release"),
    ] {
        let body = match command {
            "reserve" => InventoryCommand::ReserveStock {
                reservation_id: r.into(),
                lines: vec![StockLine {
                    product_id: "tart".into(),
                    quantity: 1,
                }],
            },
            "commit" => InventoryCommand::CommitStock {
                reservation_id: r.into(),
            },
            _ => InventoryCommand::ReleaseStock {
                reservation_id: r.into(),
            },
        };
        inventory.handle(Envelope::new("o-1", body)).await.unwrap();
    }
    inventory
        .change_price(&id, 4_500, Metadata::new())
        .await
        .unwrap();
    let state = inventory.product(&id).await.unwrap().unwrap();
    let expected = inventory::ProductView::of(&state).unwrap();
    wait_until(&catalog, "the tart's final state", |page| {
        page.items.first().map(|(_, p)| p) == Some(&expected)
    })
    .await;
    let tart = catalog.get("tart").await.unwrap().unwrap();
    assert_eq!((tart.on_hand, tart.reserved, tart.price), (2, 0, 4_500));

    // Sold out while everything is held, then discontinued.
    for r in ["r-3", "r-4"] {
        let body = InventoryCommand::ReserveStock {
            reservation_id: r.into(),
            lines: vec![StockLine {
                product_id: "tart".into(),
                quantity: 1,
            }],
        };
        inventory.handle(Envelope::new("o-2", body)).await.unwrap();
    }
    wait_until(&catalog, "the tart sold out", |page| {
        page.items
            .first()
            .is_some_and(|(_, p)| p.status == ProductStatus::SoldOut)
    })
    .await;
    inventory.discontinue(&id, Metadata::new()).await.unwrap();
    wait_until(&catalog, "the tart discontinued", |page| {
        page.items
            .first()
            .is_some_and(|(_, p)| p.status == ProductStatus::Discontinued)
    })
    .await;
    let _ = stop.send(());

    // A rebuild replays every event into a new generation with the same rows.
    let before = catalog.get("tart").await.unwrap();
    let report = models
        .rebuild(&ProductCatalog, store.as_ref(), 3, |_| {})
        .await
        .expect("rebuild");
    assert_eq!(report.generation, 2);
    assert_eq!(catalog.get("tart").await.unwrap(), before);
}

async fn refuses_bad_page_arguments(_store: Arc<dyn EventStore>, models: ReadModels) {
    let catalog = Catalog::open(models).await.unwrap();
    let all = ProductFilter::default();
    for first in [0, -1, 101] {
        let err = catalog.list(&all, first, None).await.unwrap_err();
        assert_eq!((err.code(), err.field()), ("BAD_USER_INPUT", Some("first")));
    }
    let err = catalog.list(&all, 10, Some("forged")).await.unwrap_err();
    assert_eq!((err.code(), err.field()), ("BAD_USER_INPUT", Some("after")));
    let empty = catalog.list(&all, 10, None).await.unwrap();
    assert!(empty.items.is_empty() && !empty.has_next_page);
}
