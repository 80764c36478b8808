//! Opening the index in use and replacing it when the embedding model changes.

use crate::error::IndexError;
use crate::model::ModelTag;
use crate::port::{IndexCatalog, VectorIndex};
use crate::record::VectorRecord;
use futures::{Stream, StreamExt};

/// Opens the index in use for `tag`; creates and promotes it when the catalog is empty.
///
/// Refuses (`ModelMismatch`) when the index in use was built for another model: the caller
/// must run [`reindex`] first.
pub async fn open_current<C: IndexCatalog>(
    catalog: &C,
    tag: &ModelTag,
) -> Result<C::Index, IndexError> {
    match catalog.current().await? {
        Some(current) if &current == tag => catalog.open(tag).await,
        Some(current) => Err(IndexError::ModelMismatch {
            expected: tag.clone(),
            found: current,
        }),
        None => {
            let index = catalog.open(tag).await?;
            catalog.promote(tag).await?;
            Ok(index)
        }
    }
}

/// Builds the index for `new_tag` from re-embedded `batches`, then swaps it in.
///
/// The index in use keeps serving until every batch is written and flushed; the swap is one
/// atomic pointer change, after which the previous model's index is retired. On any error the
/// old index stays in use and the partial new one is left for a later retry.
pub async fn reindex<C, S>(
    catalog: &C,
    new_tag: &ModelTag,
    batches: S,
) -> Result<C::Index, IndexError>
where
    C: IndexCatalog,
    S: Stream<Item = Result<Vec<VectorRecord>, IndexError>> + Send,
{
    let previous = catalog.current().await?;
    let index = catalog.open(new_tag).await?;
    let mut batches = std::pin::pin!(batches);
    let mut written = 0usize;
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        index.upsert(&batch).await?;
        written += batch.len();
    }
    index.flush().await?;
    catalog.promote(new_tag).await?;
    tracing::info!(model = %new_tag.key(), records = written, "reindexed and promoted");
    if let Some(previous) = previous.filter(|p| p != new_tag) {
        catalog.retire(&previous).await?;
        tracing::info!(model = %previous.key(), "retired previous index");
    }
    Ok(index)
}
