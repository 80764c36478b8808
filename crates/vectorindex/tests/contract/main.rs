//! The vector index contract, run against every adapter: the embedded HNSW index always, and
//! MongoDB Atlas when `MONGODB_URI` is set (otherwise each Atlas test prints why it skipped).

mod cases;
mod env;

/// Generates one test per contract case for an adapter environment.
macro_rules! contract_suite {
    ($adapter:ident, $env:ty) => {
        mod $adapter {
            use super::cases;
            use super::env::run;

            contract_suite!(@cases $env;
                finds_the_nearest,
                reupsert_replaces_by_id,
                remove_drops_records,
                filters_return_exact_k_under_selective_filters,
                persists_across_reopen,
                refuses_wrong_dimension,
                refuses_another_model,
                reindex_swaps_when_complete,
                failed_reindex_keeps_the_old_index,
            );
        }
    };
    (@cases $env:ty; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                run::<$env, _>(stringify!($case), |catalog| Box::pin(cases::$case(catalog))).await;
            }
        )*
    };
}

contract_suite!(hnsw, crate::env::HnswEnv);
contract_suite!(atlas, crate::env::AtlasEnv);
