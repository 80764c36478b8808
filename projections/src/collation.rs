//! Bytewise text keys: ids and sortable stamps compared with `memcmp` rather than the
//! database's locale.
//!
//! On Postgres a text column takes the database's collation, and under a locale collation
//! (en_US.UTF-8, and even C.UTF-8 on PostgreSQL 15) every comparison in its indexes goes
//! through `strcoll` on copies of both strings. Keys that nobody reads in sorted order (ids,
//! RFC 3339 stamps, whose byte order is time order) want collation "C". SQLite compares text
//! bytewise (`BINARY`) already.
//!
//! A column's collation is part of the result type of every statement that returns it, and
//! Postgres refuses to run a cached prepared statement whose result type changed ("cached plan
//! must not change result type"). So only tables read by the process that converts them at
//! start are converted (not read models behind views, whose readers in every process would
//! fail when a rebuild points the view at a table of another collation), and a release that
//! converts one must not run beside processes of an older one.

use sqlx::{AnyConnection, AnyPool};

use crate::alter::alter_once;

/// Gives `columns` (text) of `table` collation "C" on Postgres, unless they have it (see
/// [`alter_once`]). Nothing to do on SQLite. Changing a collation rewrites no rows but
/// rebuilds the indexes on those columns; run it before the table is read.
pub async fn bytewise_text(
    pool: &AnyPool,
    lock: &str,
    table: &str,
    columns: &[&str],
) -> Result<(), sqlx::Error> {
    let (table, columns): (String, Vec<String>) = (
        table.to_owned(),
        columns.iter().map(|c| (*c).to_owned()).collect(),
    );
    alter_once(pool, lock, |conn| {
        let (table, columns) = (table.clone(), columns.clone());
        Box::pin(async move {
            if conn.backend_name() != "PostgreSQL" {
                return Ok(None);
            }
            let missing = locale_columns(conn, &table, &columns).await?;
            Ok((!missing.is_empty()).then(|| alter_statement(&table, &missing)))
        })
    })
    .await
}

/// Those of `columns` of `table` (in the current schema) whose collation is not "C" (one
/// query for them all).
async fn locale_columns(
    conn: &mut AnyConnection,
    table: &str,
    columns: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    // `collation_name` is NULL for a column of the database's default collation. Only text
    // columns are ever changed (to text).
    let text: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT column_name::text, collation_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 AND data_type = 'text'",
    )
    .bind(table)
    .fetch_all(conn)
    .await?;
    Ok(text
        .into_iter()
        .filter(|(column, collation)| columns.contains(column) && collation.as_deref() != Some("C"))
        .map(|(column, _)| column)
        .collect())
}

/// One `ALTER TABLE`, so the indexes are rebuilt once.
fn alter_statement<S: AsRef<str>>(table: &str, columns: &[S]) -> String {
    let clauses: Vec<String> = columns
        .iter()
        .map(|column| format!(r#"ALTER COLUMN {} TYPE TEXT COLLATE "C""#, column.as_ref()))
        .collect();
    format!("ALTER TABLE {table} {}", clauses.join(", "))
}

#[cfg(test)]
mod tests {
    use super::alter_statement;

    #[test]
    fn alters_every_column_in_one_statement() {
        assert_eq!(
            alter_statement("saga_index", &["order_id", "deadline"]),
            r#"ALTER TABLE saga_index ALTER COLUMN order_id TYPE TEXT COLLATE "C", ALTER COLUMN deadline TYPE TEXT COLLATE "C""#
        );
    }
}
