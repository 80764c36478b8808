//! What the review subgraph's AI fields run on: semantic search, the grounded answerer and
//! chat sessions.

use std::sync::Arc;

use assistant::{Answerer, Chat};

use crate::search::ReviewSearch;

/// Search, answers and chat; absent in a process configured without them.
#[derive(Clone)]
pub struct Intelligence {
    /// Semantic search and recommendations.
    pub search: ReviewSearch,
    /// Grounded answers (`askReviews`).
    pub answerer: Answerer,
    /// Chat sessions over the stream broker.
    pub chat: Arc<Chat>,
}

impl std::fmt::Debug for Intelligence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intelligence")
            .field("search", &self.search)
            .field("answerer", &self.answerer)
            .field("chat", &self.chat)
            .finish()
    }
}
