//! The reservation and the products of its lines as one unit: their states as a command
//! knows them (cached or read), the product side of a decision, and the one multi-stream
//! append that writes both.

use eventstore::repository::Loaded;
use eventstore::{
    Aggregate as _, ExpectedVersion, Metadata, Repository, RepositoryError, StoreError,
    StreamAppend,
};

use crate::error::InventoryError;
use crate::product::{Product, ProductCommand, ProductEvent};
use crate::reservation::{Decision, Reservation, ReservationEvent, ReservedLine};
use crate::service::{Inventory, not_found_as};

/// The reservation and the products of its lines, as far as this command knows them.
pub(super) struct Streams {
    pub(super) reservation: Loaded<Reservation>,
    /// Whether `reservation` was read from the store (not a cached state that may be behind).
    pub(super) reservation_fresh: bool,
    /// One per line, in line order: the product's state and whether it was read from the store.
    pub(super) products: Vec<(ReservedLine, Loaded<Product>, bool)>,
}

/// The outcome of holding every line of a reservation on the products' current states.
pub(super) enum Held {
    /// Every line can be held: these events, per line index.
    All(Vec<(usize, Vec<ProductEvent>)>),
    /// A product refused, for this reason.
    Refused(String),
    /// Product `index` refused on a cached state: read it and decide again.
    Stale(usize),
    /// A product already holds this reservation that the (cached) reservation says is open.
    StaleReservation,
}

impl Streams {
    /// The products of `lines` beside `reservation`, cached where possible.
    pub(super) async fn with_reservation(
        inventory: &Inventory,
        (reservation, reservation_fresh): (Loaded<Reservation>, bool),
        lines: &[ReservedLine],
    ) -> Result<Self, InventoryError> {
        let mut products = Vec::with_capacity(lines.len());
        for line in lines {
            let (loaded, fresh) = inventory
                .products
                .current(&Inventory::product_key(&line.product_id))
                .await
                .map_err(|e| not_found_as(&line.product_id, e))?;
            products.push((line.clone(), loaded, fresh));
        }
        Ok(Self {
            reservation,
            reservation_fresh,
            products,
        })
    }

    /// Holds every line for `reservation_id` on the products as known.
    pub(super) fn hold_all(&self, reservation_id: &str) -> Held {
        let mut holds = Vec::with_capacity(self.products.len());
        for (index, (line, product, fresh)) in self.products.iter().enumerate() {
            let command = ProductCommand::Reserve {
                reservation_id: reservation_id.to_owned(),
                quantity: i64::from(line.quantity),
            };
            match product.state.handle(command) {
                Ok(events) if events.is_empty() => {
                    // Held by this reservation already: either the reservation state is
                    // behind, or an earlier protocol held it without deciding.
                    if !self.reservation_fresh {
                        return Held::StaleReservation;
                    }
                }
                Ok(events) => holds.push((index, events)),
                Err(_) if !fresh => return Held::Stale(index),
                Err(err) => {
                    let err = not_found_as(&line.product_id, RepositoryError::Domain(err));
                    return Held::Refused(err.to_string());
                }
            }
        }
        Held::All(holds)
    }

    /// What `command` (per line) records on each product, for the lines where it records
    /// something. Product commands used here never refuse.
    pub(super) fn product_changes(
        &self,
        command: impl Fn(&ReservedLine) -> ProductCommand,
    ) -> Vec<(usize, Vec<ProductEvent>)> {
        self.products
            .iter()
            .enumerate()
            .filter_map(|(index, (line, product, _))| {
                let events = product.state.handle(command(line)).ok()?;
                (!events.is_empty()).then_some((index, events))
            })
            .collect()
    }

    /// A line whose product shows no open hold of `reservation_id` although the reservation
    /// holds it (`held`), on a cached product state: that product must be read again.
    pub(super) fn stale_hold(
        &self,
        reservation_id: &str,
        writes: &[(usize, Vec<ProductEvent>)],
        held: bool,
    ) -> Option<usize> {
        if !held || self.reservation.state.decision() != Some(&Decision::Reserved) {
            return None;
        }
        self.products
            .iter()
            .enumerate()
            .find(|(index, (_, product, fresh))| {
                !fresh
                    && product.state.hold(reservation_id).is_none()
                    && !writes.iter().any(|(i, _)| i == index)
            })
            .map(|(index, _)| index)
    }

    pub(super) async fn refresh_reservation(
        &mut self,
        inventory: &Inventory,
        key: &str,
    ) -> Result<(), InventoryError> {
        let current = self.reservation.clone();
        self.reservation = inventory.reservations.refresh(key, current).await?;
        self.reservation_fresh = true;
        Ok(())
    }

    pub(super) async fn refresh_product(
        &mut self,
        inventory: &Inventory,
        index: usize,
    ) -> Result<(), InventoryError> {
        let (line, product, fresh) = &mut self.products[index];
        let key = Inventory::product_key(&line.product_id);
        *product = inventory
            .products
            .refresh(&key, product.clone())
            .await
            .map_err(|e| not_found_as(&line.product_id, e))?;
        *fresh = true;
        Ok(())
    }

    /// Appends the reservation's `events` (leaving it `after`) and each product's `writes` in
    /// one write. `Ok(false)`: another writer moved one of the streams, which was read again;
    /// decide again.
    pub(super) async fn write(
        &mut self,
        inventory: &Inventory,
        key: &str,
        events: Vec<ReservationEvent>,
        after: Reservation,
        writes: Vec<(usize, Vec<ProductEvent>)>,
        metadata: &Metadata,
    ) -> Result<bool, InventoryError> {
        let reservation_stream = Repository::<Reservation>::stream_of(key)?;
        let mut appends = Vec::with_capacity(1 + writes.len());
        appends.push(StreamAppend::new(
            reservation_stream.clone(),
            ExpectedVersion::Exact(self.reservation.version),
            Repository::<Reservation>::encode(&events, metadata)?,
        ));
        for (index, product_events) in &writes {
            let (line, product, _) = &self.products[*index];
            appends.push(StreamAppend::new(
                Repository::<Product>::stream_of(&Inventory::product_key(&line.product_id))?,
                ExpectedVersion::Exact(product.version),
                Repository::<Product>::encode(product_events, metadata)
                    .map_err(|e| not_found_as(&line.product_id, e))?,
            ));
        }
        match inventory.store.append_multi(appends).await {
            Ok(done) => {
                let before = self.reservation.version;
                self.reservation = Loaded {
                    state: after,
                    version: done[0].next_expected_version,
                };
                inventory
                    .reservations
                    .appended(
                        key,
                        &self.reservation.state,
                        before,
                        self.reservation.version,
                    )
                    .await;
                for ((index, product_events), result) in writes.iter().zip(&done[1..]) {
                    let (line, product, _) = &mut self.products[*index];
                    let before = product.version;
                    for event in product_events {
                        product.state.apply(event);
                    }
                    product.version = result.next_expected_version;
                    inventory
                        .products
                        .appended(
                            &Inventory::product_key(&line.product_id),
                            &product.state,
                            before,
                            product.version,
                        )
                        .await;
                }
                Ok(true)
            }
            Err(StoreError::WrongExpectedVersion { stream, .. }) => {
                tracing::debug!(%stream, "version conflict; reading the newer events");
                if stream == reservation_stream.as_str() {
                    self.refresh_reservation(inventory, key).await?;
                }
                for index in 0..self.products.len() {
                    let product_key = Inventory::product_key(&self.products[index].0.product_id);
                    if Repository::<Product>::stream_of(&product_key)?.as_str() == stream {
                        self.refresh_product(inventory, index).await?;
                    }
                }
                Ok(false)
            }
            Err(err) => Err(err.into()),
        }
    }
}
