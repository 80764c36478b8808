//! The `Product` aggregate: what is sold, at what price, and how many units are on hand and
//! held by reservations. Business rules live in [`Product::handle`]; [`Product::apply`] only
//! folds events. Every reservation id is remembered with its state, so reserve, release and
//! commit are idempotent and a released reservation is never reserved again.

use std::collections::BTreeMap;
use std::fmt;

use eventstore::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// Highest price accepted, in KRW.
pub const MAX_PRICE: i64 = 10_000_000;
/// Most units one restock (or the initial stock) may add.
pub const MAX_RESTOCK: i64 = 10_000;
/// Most units one reservation of one product may hold.
pub const MAX_RESERVE: i64 = 10_000;
/// Most units a product may have on hand.
pub const MAX_ON_HAND: u32 = 1_000_000;
/// Longest product id, in bytes.
pub const MAX_ID_LEN: usize = 64;
/// Longest reservation id, in bytes.
pub const MAX_RESERVATION_ID_LEN: usize = 128;
const MAX_NAME_CHARS: usize = 100;
const MAX_DESCRIPTION_CHARS: usize = 2_000;
const MAX_CATEGORY_CHARS: usize = 50;
const MAX_IMAGE_URL_LEN: usize = 2_048;

/// A product id: 1..=64 ASCII letters, digits and `-_.` (it is part of a stream id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProductId(String);

impl ProductId {
    /// Parses an id given from outside.
    pub fn parse(raw: &str) -> Result<Self, ProductError> {
        if valid_id(raw, MAX_ID_LEN) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ProductError::invalid(
                "id",
                format!("must be 1..={MAX_ID_LEN} ASCII letters, digits, '-', '_' or '.'"),
            ))
        }
    }

    /// A fresh id (a UUID v7).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProductId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `raw` is 1..=`max` ASCII letters, digits and `-_.`.
pub(crate) fn valid_id(raw: &str, max: usize) -> bool {
    !raw.is_empty()
        && raw.len() <= max
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

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

/// Where one reservation of this product stands.
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

/// The details of a new product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    /// Display name, 1..=100 characters.
    pub name: String,
    /// Description, up to 2,000 characters.
    pub description: String,
    /// KRW, 1..=10,000,000.
    pub price: i64,
    /// Category such as `cake`, 1..=50 characters.
    pub category: String,
    /// An `http(s)` URL of its picture.
    pub image_url: Option<String>,
    /// Units on hand at creation, 0..=10,000.
    pub initial_stock: i64,
}

/// What can be asked of a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductCommand {
    /// Puts a new product on sale (idempotent when repeated with the same details).
    Create {
        /// Its id.
        id: ProductId,
        /// Its details.
        details: NewProduct,
    },
    /// Sets the price (KRW).
    ChangePrice {
        /// The new price.
        price: i64,
    },
    /// Adds units on hand.
    Restock {
        /// Units, 1..=10,000.
        quantity: i64,
    },
    /// Stops selling the product (idempotent).
    Discontinue,
    /// Holds units for a reservation (idempotent by reservation id).
    Reserve {
        /// The reservation.
        reservation_id: String,
        /// Units, 1..=10,000.
        quantity: i64,
    },
    /// Gives a reservation's units back, also after commit (a refund); idempotent.
    Release {
        /// The reservation.
        reservation_id: String,
    },
    /// Turns a reservation's held units into sold units; idempotent.
    Commit {
        /// The reservation.
        reservation_id: String,
    },
}

/// What happened to a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ProductEvent {
    /// A product was put on sale.
    ProductCreated {
        /// Its id.
        product_id: ProductId,
        /// Display name.
        name: String,
        /// Description.
        description: String,
        /// KRW.
        price: i64,
        /// Category.
        category: String,
        /// Picture.
        image_url: Option<String>,
    },
    /// The price changed.
    PriceChanged {
        /// KRW before.
        previous_price: i64,
        /// KRW now.
        price: i64,
    },
    /// Units were added on hand.
    Restocked {
        /// Units added.
        quantity: u32,
    },
    /// The product is no longer sold.
    ProductDiscontinued,
    /// Units were held for a reservation.
    StockReserved {
        /// The reservation.
        reservation_id: String,
        /// Units held.
        quantity: u32,
    },
    /// A reservation's units went back to stock.
    StockReleased {
        /// The reservation.
        reservation_id: String,
        /// Units returned.
        quantity: u32,
        /// Whether they had been sold (a refund): they return on hand rather than from held.
        after_commit: bool,
    },
    /// A reservation's held units were sold.
    StockCommitted {
        /// The reservation.
        reservation_id: String,
        /// Units sold.
        quantity: u32,
    },
}

impl DomainEvent for ProductEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::ProductCreated { .. } => "ProductCreated",
            Self::PriceChanged { .. } => "PriceChanged",
            Self::Restocked { .. } => "Restocked",
            Self::ProductDiscontinued => "ProductDiscontinued",
            Self::StockReserved { .. } => "StockReserved",
            Self::StockReleased { .. } => "StockReleased",
            Self::StockCommitted { .. } => "StockCommitted",
        }
    }
}

/// Why a product refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductError {
    /// An input is out of range or malformed; `field` names it.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending input, e.g. `price`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The product was never created.
    #[error("the product does not exist")]
    NotFound,
    /// The id is taken by a product with other details.
    #[error("product {0} already exists with other details")]
    AlreadyExists(ProductId),
    /// Fewer units are available than requested.
    #[error("{}", out_of_stock(name, *available, *requested))]
    OutOfStock {
        /// The product's name.
        name: String,
        /// Units available.
        available: u32,
        /// Units requested.
        requested: u32,
    },
    /// The product is discontinued.
    #[error("'{name}' is discontinued and no longer sold")]
    NotOnSale {
        /// The product's name.
        name: String,
    },
}

fn out_of_stock(name: &str, available: u32, requested: u32) -> String {
    if available == 0 {
        format!("'{name}' is sold out, {requested} requested")
    } else {
        format!("only {available} of '{name}' left, {requested} requested")
    }
}

impl ProductError {
    fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "BAD_USER_INPUT",
            Self::NotFound => "NOT_FOUND",
            Self::AlreadyExists(_) => "ALREADY_EXISTS",
            Self::OutOfStock { .. } => "OUT_OF_STOCK",
            Self::NotOnSale { .. } => "NOT_ON_SALE",
        }
    }
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
    holds: BTreeMap<String, Hold>,
}

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
    /// The reservation `reservation_id` of this product, if it was ever reserved.
    pub fn hold(&self, reservation_id: &str) -> Option<Hold> {
        self.holds.get(reservation_id).copied()
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
            events.push(ProductEvent::Restocked { quantity: stock });
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
            // Known, whatever its state: a redelivery, never a second hold.
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

    fn release(&self, reservation_id: String) -> Vec<ProductEvent> {
        match self.holds.get(&reservation_id) {
            Some(hold) if hold.state != HoldState::Released => vec![ProductEvent::StockReleased {
                quantity: hold.quantity,
                after_commit: hold.state == HoldState::Committed,
                reservation_id,
            }],
            _ => vec![],
        }
    }

    fn commit(&self, reservation_id: String) -> Vec<ProductEvent> {
        match self.holds.get(&reservation_id) {
            Some(hold) if hold.state == HoldState::Reserved => vec![ProductEvent::StockCommitted {
                quantity: hold.quantity,
                reservation_id,
            }],
            _ => vec![],
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
            ProductCommand::Restock { quantity: added } => {
                let added = quantity("quantity", added, 1, MAX_RESTOCK)?;
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
                Ok(vec![ProductEvent::Restocked { quantity: added }])
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
            ProductCommand::Release { reservation_id } => Ok(self.release(reservation_id)),
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
            ProductEvent::Restocked { quantity } => {
                self.on_hand = self.on_hand.saturating_add(*quantity)
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
                self.set_hold(reservation_id, *quantity, HoldState::Released);
            }
            ProductEvent::StockCommitted {
                reservation_id,
                quantity,
            } => {
                self.on_hand = self.on_hand.saturating_sub(*quantity);
                self.reserved = self.reserved.saturating_sub(*quantity);
                self.set_hold(reservation_id, *quantity, HoldState::Committed);
            }
        }
    }
}

impl Product {
    fn set_hold(&mut self, reservation_id: &str, quantity: u32, state: HoldState) {
        self.holds
            .entry(reservation_id.to_owned())
            .and_modify(|hold| hold.state = state)
            .or_insert(Hold { quantity, state });
    }
}

/// Checks a reservation id: 1..=128 ASCII letters, digits and `-_.`.
pub fn reservation(reservation_id: &str) -> Result<(), ProductError> {
    if valid_id(reservation_id, MAX_RESERVATION_ID_LEN) {
        Ok(())
    } else {
        Err(ProductError::invalid(
            "reservation_id",
            format!("must be 1..={MAX_RESERVATION_ID_LEN} ASCII letters, digits, '-', '_' or '.'"),
        ))
    }
}

/// Checks a price in KRW.
fn price(price: i64) -> Result<i64, ProductError> {
    if (1..=MAX_PRICE).contains(&price) {
        Ok(price)
    } else {
        Err(ProductError::invalid(
            "price",
            format!("must be 1..={MAX_PRICE} KRW, got {price}"),
        ))
    }
}

/// Checks a unit count.
fn quantity(field: &'static str, value: i64, min: i64, max: i64) -> Result<u32, ProductError> {
    if (min..=max).contains(&value) {
        u32::try_from(value).map_err(|_| ProductError::invalid(field, "out of range"))
    } else {
        Err(ProductError::invalid(
            field,
            format!("must be {min}..={max}, got {value}"),
        ))
    }
}

/// Trims a text and checks its length in characters and that it holds no control characters.
fn text(field: &'static str, raw: &str, min: usize, max: usize) -> Result<String, ProductError> {
    let trimmed = raw.trim();
    let chars = trimmed.chars().count();
    if chars < min || chars > max {
        return Err(ProductError::invalid(
            field,
            format!("must be {min}..={max} characters, got {chars}"),
        ));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() && !(field == "description" && matches!(c, '\n' | '\t')))
    {
        return Err(ProductError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// Checks an `http(s)` URL without whitespace.
fn image_url(raw: &str) -> Result<String, ProductError> {
    let url = raw.trim();
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    let host_ok = url.split("://").nth(1).is_some_and(|rest| !rest.is_empty());
    if !scheme_ok
        || !host_ok
        || url.len() > MAX_IMAGE_URL_LEN
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ProductError::invalid(
            "image_url",
            format!("must be an http(s) URL of at most {MAX_IMAGE_URL_LEN} bytes"),
        ));
    }
    Ok(url.to_owned())
}
