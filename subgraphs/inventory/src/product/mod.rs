//! The `Product` aggregate: what is sold, at what price, and how many units are on hand and
//! held by reservations. Business rules live in [`Product::handle`]; [`Product::apply`] only
//! folds events. A product remembers its open holds (reservations whose units it holds) and
//! forgets a hold once it is committed or released: the reservation's own stream is what makes
//! reserve, release and commit idempotent, and each of them is appended to the reservation and
//! its products in one write (see `crate::stock`), so the product state stays small however
//! many orders it has seen.
//!
//! Parts: `rules` (limits, ids and input checks) and `command` (commands and events), both
//! re-exported here; the aggregate itself is in this file.

mod command;
mod rules;

use std::collections::{BTreeMap, VecDeque};

use eventstore::Aggregate;
use serde::{Deserialize, Serialize};

pub use command::{NewProduct, ProductCommand, ProductEvent};
use rules::{
    MAX_CATEGORY_CHARS, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, image_url, price, quantity,
    restock_key, text,
};
pub use rules::{
    MAX_ID_LEN, MAX_ON_HAND, MAX_PRICE, MAX_RESERVATION_ID_LEN, MAX_RESERVE, MAX_RESTOCK,
    ProductError, ProductId, reservation,
};

/// Whether a product can be ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProductStatus {
    /// Units are available.
    OnSale,
    /// Every unit on hand is sold or held (available is 0).
    SoldOut,
    /// No longer sold.
    Discontinued,
}

impl ProductStatus {
    /// The status of a product with `available` units.
    pub fn derive(discontinued: bool, available: u32) -> Self {
        if discontinued {
            Self::Discontinued
        } else if available == 0 {
            Self::SoldOut
        } else {
            Self::OnSale
        }
    }

    /// The stored and GraphQL name (`ON_SALE`, `SOLD_OUT`, `DISCONTINUED`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OnSale => "ON_SALE",
            Self::SoldOut => "SOLD_OUT",
            Self::Discontinued => "DISCONTINUED",
        }
    }

    /// Parses the stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ON_SALE" => Some(Self::OnSale),
            "SOLD_OUT" => Some(Self::SoldOut),
            "DISCONTINUED" => Some(Self::Discontinued),
            _ => None,
        }
    }
}

/// Where one reservation of this product stands (held products keep only `Reserved` holds;
/// the other states are read from snapshots written before holds were forgotten).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldState {
    /// The units are held.
    Reserved,
    /// The units went back to stock.
    Released,
    /// The units are sold.
    Committed,
}

/// One reservation of this product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Units reserved.
    pub quantity: u32,
    /// Where it stands.
    pub state: HoldState,
}

/// A product and its stock, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    id: Option<ProductId>,
    name: String,
    description: String,
    price: i64,
    /// The price it was created with: a retried create is recognised by it, not by today's.
    created_price: i64,
    category: String,
    image_url: Option<String>,
    on_hand: u32,
    reserved: u32,
    discontinued: bool,
    /// Open holds by reservation id.
    holds: BTreeMap<String, Hold>,
    /// The latest restocks' idempotency keys and units, oldest first (at most
    /// [`RESTOCKS_REMEMBERED`]).
    #[serde(default)]
    restocks: VecDeque<(String, u32)>,
}

/// Restock idempotency keys a product remembers: a retry comes within moments, not after
/// this many other keyed restocks of the same product.
pub const RESTOCKS_REMEMBERED: usize = 32;

impl Product {
    /// Its id, once created.
    pub fn id(&self) -> Option<&ProductId> {
        self.id.as_ref()
    }
    /// Whether it was created.
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }
    /// Display name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Description.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// KRW.
    pub fn price(&self) -> i64 {
        self.price
    }
    /// Category.
    pub fn category(&self) -> &str {
        &self.category
    }
    /// Picture URL.
    pub fn image_url(&self) -> Option<&str> {
        self.image_url.as_deref()
    }
    /// Units in the shop, held or not.
    pub fn on_hand(&self) -> u32 {
        self.on_hand
    }
    /// Units held by reservations.
    pub fn reserved(&self) -> u32 {
        self.reserved
    }
    /// Units that can still be reserved.
    pub fn available(&self) -> u32 {
        self.on_hand.saturating_sub(self.reserved)
    }
    /// ON_SALE, SOLD_OUT or DISCONTINUED.
    pub fn status(&self) -> ProductStatus {
        ProductStatus::derive(self.discontinued, self.available())
    }
    /// The open hold of reservation `reservation_id` on this product, if there is one.
    pub fn hold(&self, reservation_id: &str) -> Option<Hold> {
        self.holds
            .get(reservation_id)
            .copied()
            .filter(|h| h.state == HoldState::Reserved)
    }

    /// How many reservations hold units of this product.
    pub fn open_holds(&self) -> usize {
        self.holds
            .values()
            .filter(|h| h.state == HoldState::Reserved)
            .count()
    }

    fn create(
        &self,
        id: ProductId,
        details: NewProduct,
    ) -> Result<Vec<ProductEvent>, ProductError> {
        let created = ProductEvent::ProductCreated {
            product_id: id.clone(),
            name: text("name", &details.name, 1, MAX_NAME_CHARS)?,
            description: text(
                "description",
                &details.description,
                0,
                MAX_DESCRIPTION_CHARS,
            )?,
            price: price(details.price)?,
            category: text("category", &details.category, 1, MAX_CATEGORY_CHARS)?,
            image_url: details.image_url.as_deref().map(image_url).transpose()?,
        };
        let stock = quantity("initial_stock", details.initial_stock, 0, MAX_RESTOCK)?;
        if self.exists() {
            // A retried create is a no-op; another product under the same id is refused.
            let same = matches!(&created, ProductEvent::ProductCreated { name, description, price, category, image_url, .. }
                if *name == self.name && *description == self.description && *price == self.created_price
                    && *category == self.category && *image_url == self.image_url);
            return if same {
                Ok(vec![])
            } else {
                Err(ProductError::AlreadyExists(id))
            };
        }
        let mut events = vec![created];
        if stock > 0 {
            events.push(ProductEvent::Restocked {
                quantity: stock,
                restock_id: None,
            });
        }
        Ok(events)
    }

    fn on_sale(&self) -> Result<(), ProductError> {
        if !self.exists() {
            Err(ProductError::NotFound)
        } else if self.discontinued {
            Err(ProductError::NotOnSale {
                name: self.name.clone(),
            })
        } else {
            Ok(())
        }
    }

    fn reserve(
        &self,
        reservation_id: String,
        requested: i64,
    ) -> Result<Vec<ProductEvent>, ProductError> {
        reservation(&reservation_id)?;
        let requested = quantity("quantity", requested, 1, MAX_RESERVE)?;
        if self.holds.contains_key(&reservation_id) {
            // Held already: a redelivery, never a second hold.
            return Ok(vec![]);
        }
        self.on_sale()?;
        if requested > self.available() {
            return Err(ProductError::OutOfStock {
                name: self.name.clone(),
                available: self.available(),
                requested,
            });
        }
        Ok(vec![ProductEvent::StockReserved {
            reservation_id,
            quantity: requested,
        }])
    }

    fn release(&self, reservation_id: String, sold: Option<u32>) -> Vec<ProductEvent> {
        match (sold, self.hold(&reservation_id)) {
            (Some(quantity), _) if quantity > 0 => vec![ProductEvent::StockReleased {
                reservation_id,
                quantity,
                after_commit: true,
            }],
            (None, Some(hold)) => vec![ProductEvent::StockReleased {
                reservation_id,
                quantity: hold.quantity,
                after_commit: false,
            }],
            _ => vec![],
        }
    }

    fn commit(&self, reservation_id: String) -> Vec<ProductEvent> {
        match self.hold(&reservation_id) {
            Some(hold) => vec![ProductEvent::StockCommitted {
                quantity: hold.quantity,
                reservation_id,
            }],
            None => vec![],
        }
    }
}

impl Aggregate for Product {
    const CATEGORY: &'static str = "inventory";
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Error = ProductError;

    fn handle(&self, command: ProductCommand) -> Result<Vec<ProductEvent>, ProductError> {
        match command {
            ProductCommand::Create { id, details } => self.create(id, details),
            ProductCommand::ChangePrice { price: new } => {
                let new = price(new)?;
                self.on_sale()?;
                if new == self.price {
                    return Ok(vec![]);
                }
                Ok(vec![ProductEvent::PriceChanged {
                    previous_price: self.price,
                    price: new,
                }])
            }
            ProductCommand::Restock {
                quantity: added,
                restock_id,
            } => {
                let added = quantity("quantity", added, 1, MAX_RESTOCK)?;
                let restock_id = restock_id.as_deref().map(restock_key).transpose()?;
                if let Some(key) = &restock_id {
                    match self.restocks.iter().find(|(seen, _)| seen == key) {
                        Some((_, units)) if *units == added => return Ok(vec![]),
                        Some(_) => {
                            return Err(ProductError::invalid(
                                "idempotency_key",
                                "already used for a restock of another quantity; use a new key",
                            ));
                        }
                        None => {}
                    }
                }
                self.on_sale()?;
                if self.on_hand.saturating_add(added) > MAX_ON_HAND {
                    return Err(ProductError::invalid(
                        "quantity",
                        format!(
                            "{} on hand plus {added} would exceed the limit of {MAX_ON_HAND}",
                            self.on_hand
                        ),
                    ));
                }
                Ok(vec![ProductEvent::Restocked {
                    quantity: added,
                    restock_id,
                }])
            }
            ProductCommand::Discontinue => {
                if !self.exists() {
                    return Err(ProductError::NotFound);
                }
                if self.discontinued {
                    return Ok(vec![]);
                }
                Ok(vec![ProductEvent::ProductDiscontinued])
            }
            ProductCommand::Reserve {
                reservation_id,
                quantity,
            } => self.reserve(reservation_id, quantity),
            ProductCommand::Release {
                reservation_id,
                sold,
            } => Ok(self.release(reservation_id, sold)),
            ProductCommand::Commit { reservation_id } => Ok(self.commit(reservation_id)),
        }
    }

    fn apply(&mut self, event: &ProductEvent) {
        match event {
            ProductEvent::ProductCreated {
                product_id,
                name,
                description,
                price,
                category,
                image_url,
            } => {
                self.id = Some(product_id.clone());
                self.name = name.clone();
                self.description = description.clone();
                self.price = *price;
                self.created_price = *price;
                self.category = category.clone();
                self.image_url = image_url.clone();
            }
            ProductEvent::PriceChanged { price, .. } => self.price = *price,
            ProductEvent::Restocked {
                quantity,
                restock_id,
            } => {
                self.on_hand = self.on_hand.saturating_add(*quantity);
                if let Some(key) = restock_id {
                    if self.restocks.len() == RESTOCKS_REMEMBERED {
                        self.restocks.pop_front();
                    }
                    self.restocks.push_back((key.clone(), *quantity));
                }
            }
            ProductEvent::ProductDiscontinued => self.discontinued = true,
            ProductEvent::StockReserved {
                reservation_id,
                quantity,
            } => {
                self.reserved = self.reserved.saturating_add(*quantity);
                self.holds.insert(
                    reservation_id.clone(),
                    Hold {
                        quantity: *quantity,
                        state: HoldState::Reserved,
                    },
                );
            }
            ProductEvent::StockReleased {
                reservation_id,
                quantity,
                after_commit,
            } => {
                if *after_commit {
                    self.on_hand = self.on_hand.saturating_add(*quantity);
                } else {
                    self.reserved = self.reserved.saturating_sub(*quantity);
                }
                self.holds.remove(reservation_id);
            }
            ProductEvent::StockCommitted {
                reservation_id,
                quantity,
            } => {
                self.on_hand = self.on_hand.saturating_sub(*quantity);
                self.reserved = self.reserved.saturating_sub(*quantity);
                self.holds.remove(reservation_id);
            }
        }
    }
}
