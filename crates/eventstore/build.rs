//! Rebuilds the crate when a migration changes: `sqlx::migrate!` embeds the migrations at
//! compile time, and cargo would not otherwise look at them.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
