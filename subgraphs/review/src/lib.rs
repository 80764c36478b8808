//! The review subgraph: the `Review` entity (rating, Korean text, product, order, author,
//! labels), `writeReview` for customers of completed orders, the `Product` entity extended
//! with its reviews, rating and aspect summary, and the batch import of historical reviews.
//!
//! Layout: [`review`] (the aggregate: one stream per review, id derived from the order line),
//! [`preprocess`] (pure text cleaning, length bounds, content hashes), [`labels`] (aspects,
//! sentiment and the [`Labeller`] port), [`reviews_view`] (the `reviews` read model and its
//! queries, the Postgres/SQLite adapter of the [`documents`] port), [`mongo_reviews`] (its
//! MongoDB adapter, production), [`orders`] and [`products`] (what reviews read of the other
//! subgraphs' read models), [`service`] (the use cases and their checks), [`batch`] (the restartable, chunked
//! import with its job repository), [`cursor`] (opaque Relay cursors), [`mod@schema`] (the
//! Federation v2 schema, open for more query and mutation roots), [`server`] (HTTP), [`error`].
//!
//! Review intelligence: [`vectors`] (the embedder and vector index in use, swapped together),
//! [`embedding`] (the pipeline that embeds, labels and indexes every review, catches up and
//! re-embeds on a model change), [`model_labels`] (the [`Labeller`] over the model),
//! [`search`] (semantic search, recommendations and the assistant's retriever),
//! [`intelligence`] (what the AI fields run on), [`search_schema`] and [`chat_schema`] (their
//! GraphQL, chat with the `Subscription` root).
//!
//! Domain modules know nothing of SQL or HTTP. It never calls another subgraph and never
//! sends personal data of authors to a language model (labellers get review texts only).

pub mod batch;
pub mod chat_schema;
pub mod cursor;
pub mod documents;
pub mod embedding;
pub mod error;
pub mod intelligence;
pub mod labels;
pub mod model_labels;
pub mod mongo_reviews;
pub mod orders;
pub mod preprocess;
pub mod products;
pub mod review;
pub mod reviews_view;
pub mod schema;
pub mod search;
pub mod search_schema;
pub mod server;
pub mod service;
pub mod vectors;

pub use documents::{DocumentsError, ReviewDocuments};
pub use embedding::{CatchUp, EmbeddingPipeline};
pub use error::ServiceError;
pub use intelligence::Intelligence;
pub use labels::{Aspect, AspectLabel, LabelError, Labeller, Labels, Sentiment};
pub use model_labels::ModelLabeller;
pub use mongo_reviews::MongoReviews;
pub use review::{Review, ReviewCommand, ReviewError, ReviewEvent};
pub use reviews_view::{ReviewViews, ReviewsView};
pub use schema::{ReviewSchema, ReviewState, schema, sdl};
pub use search::{Like, Recommendation, ReviewSearch, SearchHit};
pub use server::{router, run};
pub use service::{ReviewService, WriteReview};
pub use vectors::ReviewVectors;
