//! The batch import on Postgres (one transaction per chunk) and SQLite (idempotent appends):
//! JSONL and CSV files with malformed lines reported one by one, denormalisation, orders the
//! platform knows, reruns, skip limits, and crashes mid-job that never write a review twice.

mod support;

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::PathBuf;

use review::batch::{self, BatchError, Format, ImportOptions, JobStatus, SkipKind};
use review::reviews_view::{REVIEWS, ReviewDoc};
use sqlx::Row;
use support::{Backend, Stack};
use tokio::sync::watch;

/// Writes `content` to a file named `name` in a fresh temp dir.
fn file(name: &str, content: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(content.as_bytes())
        .unwrap();
    (dir, path)
}

async fn products(stack: &Stack) {
    stack.product("p01", "딸기 생크림 케이크", "cake").await;
    stack.product("p02", "초코 가나슈 케이크", "cake").await;
    stack.product("p03", "피스타치오 마카롱", "macaron").await;
    stack.project().await;
}

/// Every `ReviewWritten` event, by stream; fails if a stream has two.
async fn written_streams(stack: &Stack) -> HashSet<String> {
    let mut streams = HashSet::new();
    for event in stack.all_events().await {
        if event.event_type == "ReviewWritten" {
            assert!(
                streams.insert(event.stream_id.to_string()),
                "{} written twice",
                event.stream_id
            );
        }
    }
    streams
}

async fn docs(stack: &Stack) -> HashMap<String, ReviewDoc> {
    let views = review::ReviewViews::open(stack.models.clone())
        .await
        .unwrap();
    let ids: Vec<String> = sqlx::query(&format!("SELECT id FROM {REVIEWS}"))
        .fetch_all(stack.models.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    views.get_many(&ids).await.unwrap()
}

fn by_text(docs: &HashMap<String, ReviewDoc>, text: &str) -> ReviewDoc {
    docs.values()
        .find(|d| d.text == text)
        .unwrap_or_else(|| panic!("no review {text:?} in {docs:?}"))
        .clone()
}

const JSONL: &str = r#"{"id":"r001","product_id":"p01","rating":5,"text":"딸기가 <b>진짜</b> 크고   싱싱해요"}
{"id":"r002","product_id":"p02","rating":4,"text":"꾸덕하고 진해요","created_at":"2025-03-01T12:00:00Z"}
{"product_id":"p01","rating":"9","text":"별이 너무 많아요"}
not json at all

{"id":"r003","product_id":"p99","rating":3,"text":"없는 상품"}
{"id":"r004","product_id":"p03","rating":2,"text":"<p> </p>"}
{"id":"r005","product_id":"p01","rating":5,"text":"딸기가 진짜 크고 싱싱해요"}
{"id":"r006","product_id":"p03","rating":1,"text":"너무 달아요 &amp; 비싸요"}
"#;

async fn jsonl_import_reports_every_skipped_line(backend: Backend) {
    let stack = Stack::new(backend).await;
    products(&stack).await;
    let (_dir, path) = file("reviews.jsonl", JSONL);
    let options = ImportOptions {
        chunk_size: 3,
        ..ImportOptions::default()
    };
    let report = batch::import(&stack.import_store(), &stack.models, &path, options.clone())
        .await
        .unwrap();
    assert_eq!(report.status, JobStatus::Completed);
    let c = report.counts;
    assert_eq!(
        (c.read, c.written, c.skipped, c.duplicates),
        (8, 3, 4, 1),
        "{report}"
    );
    let skipped: Vec<(u64, SkipKind)> = report.skips.iter().map(|s| (s.line, s.kind)).collect();
    assert_eq!(
        skipped,
        vec![
            (3, SkipKind::Skipped),
            (4, SkipKind::Skipped),
            (6, SkipKind::Skipped),
            (7, SkipKind::Skipped),
            (8, SkipKind::Duplicate),
        ]
    );
    let text = report.to_string();
    for expected in [
        "read 8  written 3  skipped 4  duplicates 1",
        "skipped line 3: rating must be an integer 1 to 5, got 9",
        "skipped line 4: not a JSON review object",
        "skipped line 6: unknown product p99",
        "skipped line 7: text is empty",
        "duplicate line 8: same review as line 1",
        "records/s",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    assert_eq!(written_streams(&stack).await.len(), 3);
    stack.project().await;
    let docs = docs(&stack).await;
    assert_eq!(docs.len(), 3);
    let strawberry = by_text(&docs, "딸기가 진짜 크고 싱싱해요");
    assert_eq!(strawberry.product_name, "딸기 생크림 케이크");
    assert_eq!(strawberry.product_category.as_deref(), Some("cake"));
    assert_eq!(strawberry.author_id, None);
    let dated = by_text(&docs, "꾸덕하고 진해요");
    assert_eq!(dated.created_at, "2025-03-01T12:00:00.000000Z");
    assert_eq!(by_text(&docs, "너무 달아요 & 비싸요").rating, 1);

    // The same file again is the same, finished job: nothing is written twice.
    let again = batch::import(&stack.import_store(), &stack.models, &path, options)
        .await
        .unwrap();
    assert_eq!(again.status, JobStatus::Completed);
    assert_eq!(again.counts, report.counts);
    assert_eq!(again.run_records, 0);
    assert_eq!(written_streams(&stack).await.len(), 3);

    // A second file with the same reviews drops them as duplicates of stored ones.
    let (_dir2, copy) = file("copy.jsonl", &format!("{JSONL}\n"));
    let copied = batch::import(
        &stack.import_store(),
        &stack.models,
        &copy,
        ImportOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(copied.counts.written, 0, "{copied}");
    assert_eq!(copied.counts.duplicates, 4, "{copied}");
    assert!(
        copied
            .to_string()
            .contains("same review already stored as review")
    );
    assert_eq!(written_streams(&stack).await.len(), 3);
}

#[tokio::test]
async fn jsonl_import_reports_every_skipped_line_on_postgres() {
    jsonl_import_reports_every_skipped_line(Backend::Postgres).await;
}

#[tokio::test]
async fn jsonl_import_reports_every_skipped_line_on_sqlite() {
    jsonl_import_reports_every_skipped_line(Backend::Sqlite).await;
}

async fn csv_import_checks_known_orders(backend: Backend) {
    let stack = Stack::new(backend).await;
    stack.product("p01", "딸기 생크림 케이크", "cake").await;
    stack.product("p02", "초코 가나슈 케이크", "cake").await;
    let completed = stack.order("customer-1", &["p01", "p02"], true).await;
    let open = stack.order("customer-1", &["p01"], false).await;
    stack.project().await;
    let csv = format!(
        "id,product_id,order_id,author_id,rating,text,order_date\n\
         c1,p01,{completed},,5,\"달콤하고, 부드러워요\",\n\
         c2,p02,{completed},customer-9,4,남의 주문,\n\
         c3,p01,{open},,4,아직 안 받았어요,\n\
         c4,p02,legacy-17,old-customer,3,\"예전 주문인데\n두 줄이에요\",2023-12-24T18:00:00+09:00\n\
         c5,p01,legacy-17\n\
         c6,p01,,,x,별점이 글자,\n\
         c7,p01,{completed},customer-1,2,같은 주문 줄 다시,\n"
    );
    let (_dir, path) = file("reviews.csv", &csv);
    let report = batch::import(
        &stack.import_store(),
        &stack.models,
        &path,
        ImportOptions::default(),
    )
    .await
    .unwrap();
    let c = report.counts;
    assert_eq!((c.read, c.written, c.skipped), (7, 2, 5), "{report}");
    let text = report.to_string();
    for expected in [
        "skipped line 3: the author is not the customer of order",
        "skipped line 4: order ",
        "is PLACED, not completed",
        "skipped line 7: has 3 fields where the header has 7",
        "skipped line 8: rating must be an integer 1 to 5, got \"x\"",
        "skipped line 9: order line already reviewed on line 2",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    stack.project().await;
    let docs = docs(&stack).await;
    let linked = by_text(&docs, "달콤하고, 부드러워요");
    assert_eq!(linked.author_id.as_deref(), Some("customer-1"));
    assert_eq!(linked.order_id.as_deref(), Some(completed.as_str()));
    assert!(linked.order_date.is_some());
    let legacy = by_text(&docs, "예전 주문인데 두 줄이에요");
    assert_eq!(
        legacy.order_date.as_deref(),
        Some("2023-12-24T09:00:00.000000Z")
    );
    assert_eq!(legacy.author_id.as_deref(), Some("old-customer"));

    // The imported order line counts for "once per order line" in writeReview too.
    let service = review::ReviewService::new(stack.store.clone(), stack.models.clone())
        .await
        .unwrap();
    let me = auth::Identity::customer("customer-1");
    let err = service
        .write(
            Some(&me),
            review::WriteReview {
                order_id: completed.clone(),
                product_id: "p01".into(),
                rating: 5,
                text: "또 쓰기".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ALREADY_REVIEWED");
}

#[tokio::test]
async fn csv_import_checks_known_orders_on_postgres() {
    csv_import_checks_known_orders(Backend::Postgres).await;
}

#[tokio::test]
async fn csv_import_checks_known_orders_on_sqlite() {
    csv_import_checks_known_orders(Backend::Sqlite).await;
}

/// `n` valid, distinct reviews.
fn many(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"id\":\"m{i}\",\"product_id\":\"p0{}\",\"rating\":{},\"text\":\"{i}번째 리뷰, 맛있어요\"}}\n",
                1 + i % 3,
                1 + i % 5
            )
        })
        .collect()
}

async fn restart_after_crashes_writes_each_review_once(backend: Backend) {
    let mut stack = Stack::new(backend).await;
    products(&stack).await;
    let total = 120;
    let (_dir, path) = file("many.jsonl", &many(total));
    let options = |progress: Option<watch::Sender<u64>>| ImportOptions {
        chunk_size: 5,
        progress,
        ..ImportOptions::default()
    };
    // A clean stop after three chunks.
    let stopped = batch::import(
        &stack.import_store(),
        &stack.models,
        &path,
        ImportOptions {
            max_chunks: Some(3),
            ..options(None)
        },
    )
    .await
    .unwrap();
    assert_eq!(stopped.status, JobStatus::Stopped);
    assert_eq!(stopped.counts.read, 15);
    assert_eq!(written_streams(&stack).await.len(), 15);
    if backend == Backend::Sqlite {
        // Without a shared transaction the store can crash after a chunk's appends and before
        // its checkpoint: lose chunk 3's checkpoint, as such a crash would.
        sqlx::query("UPDATE batch_step SET last_chunk = 2, read_count = 10, write_count = 10")
            .execute(stack.models.pool())
            .await
            .unwrap();
    }

    // Crashes: the job's task is killed while it is writing, at three different points, and
    // the stores are opened again as a restarted process would.
    for crash_after in [5u64, 9, 16] {
        let (tx, mut rx) = watch::channel(0u64);
        let store = stack.import_store();
        let models = stack.models.clone();
        let job_path = path.clone();
        let opts = options(Some(tx));
        let job =
            tokio::spawn(async move { batch::import(&store, &models, &job_path, opts).await });
        if rx.wait_for(|chunk| *chunk >= crash_after).await.is_err() {
            panic!("the job ended before chunk {crash_after}: {:?}", job.await);
        }
        // Let it get into the next chunk, then kill it.
        tokio::task::yield_now().await;
        job.abort();
        assert!(job.await.unwrap_err().is_cancelled());
        stack.restart().await;
    }
    let finished = batch::import(&stack.import_store(), &stack.models, &path, options(None))
        .await
        .unwrap();
    assert_eq!(finished.status, JobStatus::Completed, "{finished}");
    assert!(finished.resumed_after_chunk >= 16, "{finished}");
    let c = finished.counts;
    assert_eq!(
        (c.read, c.written, c.skipped, c.duplicates),
        (120, 120, 0, 0),
        "{finished}"
    );
    assert_eq!(finished.chunks, 24);
    assert_eq!(written_streams(&stack).await.len(), total);
    stack.project().await;
    let docs = docs(&stack).await;
    assert_eq!(docs.len(), total);
    let rating = review::ReviewViews::open(stack.models.clone())
        .await
        .unwrap()
        .ratings(&["p01".to_owned()])
        .await
        .unwrap()["p01"];
    assert_eq!(rating.count, 40);
}

#[tokio::test]
async fn restart_after_crashes_writes_each_review_once_on_postgres() {
    restart_after_crashes_writes_each_review_once(Backend::Postgres).await;
}

#[tokio::test]
async fn restart_after_crashes_writes_each_review_once_on_sqlite() {
    restart_after_crashes_writes_each_review_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn skip_limit_fails_the_job_and_bad_files_are_refused() {
    let stack = Stack::new(Backend::Sqlite).await;
    products(&stack).await;
    let (_dir, path) = file(
        "bad.jsonl",
        "{\"product_id\":\"p01\",\"rating\":5,\"text\":\"좋아요\"}\n[]\n{}\n",
    );
    let options = ImportOptions {
        skip_limit: Some(1),
        ..ImportOptions::default()
    };
    let err = batch::import(&stack.import_store(), &stack.models, &path, options)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BatchError::SkipLimit {
                limit: 1,
                skipped: 2
            }
        ),
        "{err}"
    );
    assert_eq!(err.code(), "SKIP_LIMIT_EXCEEDED");
    assert!(written_streams(&stack).await.is_empty());
    let status: String = sqlx::query_scalar("SELECT status FROM batch_job")
        .fetch_one(stack.models.pool())
        .await
        .unwrap();
    assert_eq!(status, "FAILED");

    let (_dir, csv) = file("no_rating.csv", "product_id,text\np01,좋아요\n");
    let err = batch::import(
        &stack.import_store(),
        &stack.models,
        &csv,
        ImportOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "BAD_FORMAT", "{err}");
    let (_dir, txt) = file("reviews.txt", "");
    let err = batch::import(
        &stack.import_store(),
        &stack.models,
        &txt,
        ImportOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "INVALID_OPTIONS", "{err}");
    let err = batch::import(
        &stack.import_store(),
        &stack.models,
        &txt,
        ImportOptions {
            format: Some(Format::Jsonl),
            chunk_size: 0,
            ..ImportOptions::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "INVALID_OPTIONS", "{err}");
    let err = batch::import(
        &stack.import_store(),
        &stack.models,
        std::path::Path::new("/nonexistent/reviews.jsonl"),
        ImportOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "IO", "{err}");
}
