//! Fresh PostgreSQL databases for each benchmark, so that no run inherits
//! another's table bloat, caches of its own rows or leftover locks. They are
//! the tests' databases ([`TestDb`]), named after what they measure so that
//! they can be told apart in `pg_stat_activity` while a run is going on.

use anyhow::{Context, Result};
pub use registre_store::testing::TestDb;

/// Creates `registre_bench_<label>_<pid>` on the server of `admin_url`.
pub async fn fresh(admin_url: &str, label: &str) -> Result<TestDb> {
    let name = format!("registre_bench_{label}_{}", std::process::id());
    TestDb::create_named(admin_url, &name)
        .await
        .with_context(|| format!("creating database {name}"))
}
