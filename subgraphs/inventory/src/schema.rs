//! The inventory subgraph's GraphQL schema (Federation v2): `type Product @key(fields: "id")`,
//! the public `products` / `product` queries over the catalog read model, and the staff
//! mutations, which answer from the aggregate so a client sees its own write at once.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::connection::{Connection, Edge};
use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{
    Context, EmptySubscription, Enum, ErrorExtensions, ID, InputObject, Object, Schema,
};
use auth::{AuthError, Identity};
use eventstore::{EventStore, Metadata};
use projections::ReadModels;

use crate::catalog::{Catalog, ProductFilter, ProductView};
use crate::error::InventoryError;
use crate::product::{NewProduct, Product, ProductId, ProductStatus as DomainStatus};
use crate::service::Inventory;

/// The executable schema.
pub type InventorySchema = Schema<Query, Mutation, EmptySubscription>;

/// What the resolvers need; cheap to clone.
#[derive(Clone)]
pub struct InventoryState {
    /// Product and stock commands.
    pub inventory: Inventory,
    /// Queries over the `products` read model.
    pub catalog: Catalog,
}

impl InventoryState {
    /// The state over an event store and a read-model database (registering the `products`
    /// projection there, so queries work before its consumer first runs).
    pub async fn new(
        store: Arc<dyn EventStore>,
        models: ReadModels,
    ) -> Result<Self, InventoryError> {
        Ok(Self {
            inventory: Inventory::new(store),
            catalog: Catalog::open(models).await?,
        })
    }
}

/// The caller of one request, as the HTTP layer read it from the identity header: `Ok(None)`
/// is anonymous, `Err` a malformed header.
#[derive(Debug, Clone)]
pub struct Caller(pub Result<Option<Identity>, AuthError>);

/// Batches the products one request looks up (federation `_entities`, `product`).
pub struct ProductLoader(pub Catalog);

impl Loader<String> for ProductLoader {
    type Value = ProductView;
    type Error = Arc<InventoryError>;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, ProductView>, Self::Error> {
        self.0.get_many(keys).await.map_err(Arc::new)
    }
}

/// Builds the schema.
pub fn schema(state: InventoryState) -> InventorySchema {
    builder().data(state).finish()
}

/// The federation SDL of this subgraph.
pub fn sdl() -> String {
    builder()
        .finish()
        .sdl_with_options(async_graphql::SDLExportOptions::new().federation())
}

fn builder() -> async_graphql::SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query, Mutation, EmptySubscription)
        .enable_federation()
        .limit_depth(12)
        .limit_complexity(2_000)
}

/// A GraphQL error with `extensions.code` (and `extensions.field` for bad input). Platform
/// failures are logged and shown as a generic message.
pub(crate) fn gql_error(err: impl Into<InventoryError>) -> async_graphql::Error {
    to_gql(&err.into())
}

fn to_gql(err: &InventoryError) -> async_graphql::Error {
    let code = err.code();
    let field = err.field().map(camel_case);
    let message = if err.is_client_error() {
        err.to_string()
    } else {
        tracing::error!(error = %err, code, "inventory request failed");
        "internal error; try again later".to_owned()
    };
    async_graphql::Error::new(message).extend_with(|_, ext| {
        ext.set("code", code);
        if let Some(field) = &field {
            ext.set("field", field.as_str());
        }
    })
}

/// `image_url` → `imageUrl`, the GraphQL spelling of a domain field.
fn camel_case(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn state<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a InventoryState> {
    ctx.data::<InventoryState>()
}

/// Requires a staff or admin caller.
fn staff<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Identity> {
    let identity = match ctx.data_opt::<Caller>() {
        Some(Caller(Ok(identity))) => identity.as_ref(),
        Some(Caller(Err(err))) => return Err(gql_error(err.clone())),
        None => None,
    };
    auth::require_staff(identity).map_err(gql_error)
}

/// Event metadata for a command on behalf of `identity`.
fn metadata(identity: &Identity) -> Metadata {
    let metadata = Metadata::new().with_user(identity.sub.clone());
    match telemetry::current_traceparent() {
        Some(traceparent) => metadata.with_traceparent(traceparent),
        None => metadata,
    }
}

fn parse_id(id: &str) -> async_graphql::Result<ProductId> {
    ProductId::parse(id).map_err(gql_error)
}

/// The view of an aggregate just written.
fn written(product: Product) -> async_graphql::Result<ProductNode> {
    ProductView::of(&product)
        .map(ProductNode)
        .ok_or_else(|| gql_error(InventoryError::Decode("written product has no id".into())))
}

/// Looks products up through the request's loader (batched), or straight from the catalog.
async fn find(ctx: &Context<'_>, id: &ProductId) -> async_graphql::Result<Option<ProductNode>> {
    let found = match ctx.data_opt::<DataLoader<ProductLoader>>() {
        Some(loader) => loader
            .load_one(id.to_string())
            .await
            .map_err(|err| to_gql(&err))?,
        None => state(ctx)?
            .catalog
            .get(id.as_str())
            .await
            .map_err(gql_error)?,
    };
    Ok(found.map(ProductNode))
}

/// Whether a product can be ordered.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "ProductStatus")]
pub enum ProductStatusGql {
    /// Units are available.
    OnSale,
    /// Every unit is sold or held.
    SoldOut,
    /// No longer sold.
    Discontinued,
}

impl From<DomainStatus> for ProductStatusGql {
    fn from(status: DomainStatus) -> Self {
        match status {
            DomainStatus::OnSale => Self::OnSale,
            DomainStatus::SoldOut => Self::SoldOut,
            DomainStatus::Discontinued => Self::Discontinued,
        }
    }
}

fn int(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(if value < 0 { i32::MIN } else { i32::MAX })
}

/// A product of the shop, owned by this subgraph.
pub struct ProductNode(pub ProductView);

/// A dessert on the menu.
#[Object(name = "Product")]
impl ProductNode {
    /// Its id.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Description.
    async fn description(&self) -> &str {
        &self.0.description
    }
    /// Price per unit in KRW.
    async fn price(&self) -> i32 {
        int(self.0.price)
    }
    /// Category, such as `cake`.
    async fn category(&self) -> &str {
        &self.0.category
    }
    /// Picture URL.
    async fn image_url(&self) -> Option<&str> {
        self.0.image_url.as_deref()
    }
    /// Units in the shop, held or not.
    async fn stock_on_hand(&self) -> i32 {
        int(self.0.on_hand)
    }
    /// Units held by orders in progress.
    async fn reserved(&self) -> i32 {
        int(self.0.reserved)
    }
    /// Units that can still be ordered.
    async fn available(&self) -> i32 {
        int(self.0.available())
    }
    /// ON_SALE, SOLD_OUT or DISCONTINUED.
    async fn status(&self) -> ProductStatusGql {
        self.0.status.into()
    }
}

/// Public queries.
pub struct Query;

#[Object]
impl Query {
    /// Products in name order, a page at a time (`first` 1..=100, `after` a cursor from a
    /// previous page), optionally one category or only those on sale.
    async fn products(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
        category: Option<String>,
        #[graphql(default = false)] on_sale: bool,
    ) -> async_graphql::Result<Connection<String, ProductNode>> {
        let filter = ProductFilter {
            category,
            on_sale_only: on_sale,
        };
        let page = state(ctx)?
            .catalog
            .list(&filter, i64::from(first), after.as_deref())
            .await
            .map_err(gql_error)?;
        let mut connection = Connection::new(false, page.has_next_page);
        connection.edges.extend(
            page.items
                .into_iter()
                .map(|(cursor, view)| Edge::new(cursor, ProductNode(view))),
        );
        Ok(connection)
    }

    /// One product, or null when there is none with this id.
    async fn product(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<ProductNode>> {
        find(ctx, &parse_id(&id)?).await
    }

    /// Resolves `Product` references from other subgraphs.
    #[graphql(entity)]
    async fn find_product_by_id(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<ProductNode>> {
        match ProductId::parse(&id) {
            Ok(id) => find(ctx, &id).await,
            Err(_) => Ok(None),
        }
    }
}

/// A new product.
#[derive(InputObject)]
pub struct CreateProductInput {
    /// An id of your choosing (1..=64 letters, digits, `-_.`), which makes retries safe; a
    /// fresh one when omitted.
    pub id: Option<ID>,
    /// Display name, 1..=100 characters.
    pub name: String,
    /// Description, up to 2,000 characters.
    #[graphql(default)]
    pub description: String,
    /// KRW, 1..=10,000,000.
    pub price: i32,
    /// Category, 1..=50 characters.
    pub category: String,
    /// An http(s) picture URL.
    pub image_url: Option<String>,
    /// Units on hand to start with, 0..=10,000.
    #[graphql(default)]
    pub initial_stock: i32,
}

/// Staff and admin mutations.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Puts a new product on sale (staff only).
    async fn create_product(
        &self,
        ctx: &Context<'_>,
        input: CreateProductInput,
    ) -> async_graphql::Result<ProductNode> {
        let identity = staff(ctx)?;
        let id = input.id.as_deref().map(|id| parse_id(id)).transpose()?;
        let details = NewProduct {
            name: input.name,
            description: input.description,
            price: i64::from(input.price),
            category: input.category,
            image_url: input.image_url,
            initial_stock: i64::from(input.initial_stock),
        };
        let product = state(ctx)?
            .inventory
            .create_product(id, details, metadata(identity))
            .await
            .map_err(gql_error)?;
        written(product)
    }

    /// Sets a product's price in KRW (staff only).
    async fn change_price(
        &self,
        ctx: &Context<'_>,
        id: ID,
        price: i32,
    ) -> async_graphql::Result<ProductNode> {
        let identity = staff(ctx)?;
        let id = parse_id(&id)?;
        let product = state(ctx)?
            .inventory
            .change_price(&id, i64::from(price), metadata(identity))
            .await
            .map_err(gql_error)?;
        written(product)
    }

    /// Adds 1..=10,000 units on hand (staff only). With an `idempotencyKey` (1 to 64
    /// printable ASCII characters, new for each restock), asking again after an error or a
    /// timeout adds the units once.
    async fn restock(
        &self,
        ctx: &Context<'_>,
        id: ID,
        quantity: i32,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<ProductNode> {
        let identity = staff(ctx)?;
        let id = parse_id(&id)?;
        let product = state(ctx)?
            .inventory
            .restock(
                &id,
                i64::from(quantity),
                idempotency_key,
                metadata(identity),
            )
            .await
            .map_err(gql_error)?;
        written(product)
    }

    /// Stops selling a product (staff only).
    async fn discontinue(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ProductNode> {
        let identity = staff(ctx)?;
        let id = parse_id(&id)?;
        let product = state(ctx)?
            .inventory
            .discontinue(&id, metadata(identity))
            .await
            .map_err(gql_error)?;
        written(product)
    }
}
