//! Fresh PostgreSQL databases for each benchmark, so that no run inherits
//! another's table bloat, caches of its own rows or leftover locks. They are
//! the tests' databases ([`TestDb`]), named after what they measure so that
//! they can be told apart in `pg_stat_activity` while a run is going on.

use crate::gen::{self, GenConfig, GenEvent};
use anyhow::{Context, Result};
pub use registre_store::testing::TestDb;
use registre_store::EventStore;
use std::sync::Arc;

/// Creates `registre_bench_<label>_<pid>` on the server of `admin_url`.
pub async fn fresh(admin_url: &str, label: &str) -> Result<TestDb> {
    let name = format!("registre_bench_{label}_{}", std::process::id());
    TestDb::create_named(admin_url, &name)
        .await
        .with_context(|| format!("creating database {name}"))
}

/// Runs `bench` on a [`fresh`] database, then drops the database whatever
/// `bench` answered (its stores must be closed by then).
pub async fn with_fresh<T>(
    admin_url: &str,
    label: &str,
    bench: impl AsyncFnOnce(&TestDb) -> Result<T>,
) -> Result<T> {
    let db = fresh(admin_url, label).await?;
    let result = bench(&db).await;
    db.drop_db().await?;
    result
}

/// The URL of the database `name` on the server of `admin_url`, created if
/// it is not there; never dropped by the benchmark (`--keep`).
pub async fn kept(admin_url: &str, name: &str) -> Result<String> {
    anyhow::ensure!(
        registre_store::testing::is_plain_identifier(name),
        "database name {name:?}: lower-case letters, digits and _ only"
    );
    let admin = registre_store::testing::connect(admin_url).await?;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("creating database {name}"))?;
    }
    Ok(registre_store::testing::with_database(admin_url, name))
}

/// `raw` behind the vault: personal text sealed on append, as the server
/// writes it.
pub fn sealed(raw: Arc<dyn EventStore>) -> Result<Arc<dyn EventStore>> {
    Ok(registre_store::VaultStore::wrap(
        raw,
        registre_domain::personal::sealed_fields,
    )?)
}

/// The PostgreSQL store at `url`, behind the vault.
pub async fn sealed_postgres(url: &str) -> Result<Arc<dyn EventStore>> {
    sealed(registre_store::PostgresStore::connect(url).await?)
}

/// Writes one establishment of the generator (24 classes, 600 students, a
/// year) into `store`; answers the generator's settings and the log.
pub async fn seed_establishment(store: &dyn EventStore) -> Result<(GenConfig, Vec<GenEvent>)> {
    let gen_config = GenConfig::default();
    let (log, _) = gen::generate(&gen_config, 0);
    crate::rebuild::seed_store(store, &log, gen_config.seed, 5_000).await?;
    Ok((gen_config, log))
}
