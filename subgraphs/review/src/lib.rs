//! The review subgraph: the `Review` entity (rating, Korean text, product, order, author,
//! labels), `writeReview` for customers of completed orders, the `Product` entity extended
//! with its reviews, rating and aspect summary, and the batch import of historical reviews.
//!
//! Layout: [`review`] (the aggregate: one stream per review, id derived from the order line),
//! [`preprocess`] (pure text cleaning, length bounds, content hashes), [`labels`] (aspects,
//! sentiment and the [`Labeller`] port), [`reviews_view`] (the `reviews` read model and its
//! queries), [`orders`] and [`products`] (what reviews read of the other subgraphs' read
//! models), [`service`] (the use cases and their checks), [`batch`] (the restartable, chunked
//! import with its job repository), [`cursor`] (opaque Relay cursors), [`mod@schema`] (the
//! Federation v2 schema, open for more query and mutation roots), [`server`] (HTTP), [`error`].
//!
//! Domain modules know nothing of SQL or HTTP. It never calls another subgraph and never
//! sends personal data of authors to a language model (labellers get review texts only).

pub mod batch;
pub mod cursor;
pub mod error;
pub mod labels;
pub mod orders;
pub mod preprocess;
pub mod products;
pub mod review;
pub mod reviews_view;
pub mod schema;
pub mod server;
pub mod service;

pub use error::ServiceError;
pub use labels::{Aspect, AspectLabel, LabelError, Labeller, Labels, Sentiment};
pub use review::{Review, ReviewCommand, ReviewError, ReviewEvent};
pub use reviews_view::{ReviewViews, ReviewsView};
pub use schema::{ReviewSchema, ReviewState, schema, sdl};
pub use server::{router, run};
pub use service::{ReviewService, WriteReview};
