//! Fresh PostgreSQL databases for each benchmark, so that no run inherits
//! another's table bloat, caches of its own rows or leftover locks.

use anyhow::{Context, Result};
use tokio_postgres::NoTls;

/// A database created for one benchmark and dropped afterwards.
#[derive(Debug)]
pub struct FreshDb {
    admin_url: String,
    pub name: String,
    pub url: String,
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let host_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[host_start..].find('/') {
        Some(i) => &base[..host_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

async fn admin(url: &str) -> Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

impl FreshDb {
    pub async fn create(admin_url: &str, label: &str) -> Result<Self> {
        let name = format!("registre_bench_{label}_{}", std::process::id());
        let client = admin(admin_url).await?;
        // Two statements: DROP/CREATE DATABASE refuse to run in the implicit
        // transaction of a multi-statement batch.
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("creating database {name}"))?;
        Ok(Self {
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name),
            name,
        })
    }

    pub async fn drop_db(self) -> Result<()> {
        let client = admin(&self.admin_url).await?;
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .with_context(|| format!("dropping database {}", self.name))?;
        Ok(())
    }

    pub async fn connect(&self) -> Result<tokio_postgres::Client> {
        admin(&self.url).await
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://h:1/db?sslmode=disable", "y"),
            "postgres://h:1/y?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:1", "z"), "postgres://h:1/z");
    }
}
