//! Test support shared by every crate's integration tests and the benchmarks:
//! a PostgreSQL database per test or benchmark run, created on the server named
//! by `REGISTRE_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! or on a server given explicitly, and dropped even when the test fails.
//! Real databases, never mocks.

use crate::{Result, StoreError};

/// The server tests create their databases on.
pub fn admin_url() -> String {
    std::env::var("REGISTRE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` with its database name replaced by `name` (query parameters kept).
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

/// A client on `url`, its connection driven by a task of its own.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    // The URL may carry a password: it is not repeated in the error.
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| StoreError::Backend(format!("test database server: connect: {e}")))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn execute(url: &str, sql: &str) -> Result<()> {
    connect(url)
        .await?
        .batch_execute(sql)
        .await
        .map_err(|e| StoreError::Backend(format!("test database server: {sql}: {e}")))
}

/// An empty, unmigrated database created for one test (or benchmark run) and
/// dropped after it: by [`TestDb::drop_db`], or when it goes out of scope.
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    pub name: String,
    admin_url: String,
    dropped: bool,
}

impl TestDb {
    /// Creates `registre_test_<uuid>` on the server of `REGISTRE_TEST_DATABASE_URL`.
    /// Panics with a clear message when the server is unreachable: a test
    /// without its database cannot say anything.
    pub async fn create() -> TestDb {
        let admin_url = admin_url();
        TestDb::create_on(&admin_url).await.unwrap_or_else(|e| {
            panic!("PostgreSQL must be reachable at REGISTRE_TEST_DATABASE_URL ({e})")
        })
    }

    /// Creates `registre_test_<uuid>` on the server `admin_url` connects to.
    pub async fn create_on(admin_url: &str) -> Result<TestDb> {
        let name = format!("registre_test_{}", uuid::Uuid::new_v4().simple());
        Self::create_named(admin_url, &name).await
    }

    /// Creates the database `name` on the server `admin_url` connects to,
    /// dropping a leftover of the same name first (a benchmark run that was
    /// killed). `name` must be a plain SQL identifier.
    pub async fn create_named(admin_url: &str, name: &str) -> Result<TestDb> {
        if !is_plain_identifier(name) {
            return Err(StoreError::Backend(format!(
                "test database name {name:?} is not a plain identifier"
            )));
        }
        // Two batches: DROP/CREATE DATABASE refuse to run in the implicit
        // transaction of a multi-statement batch.
        let admin = connect(admin_url).await?;
        for sql in [drop_statement(name), format!("CREATE DATABASE {name}")] {
            admin
                .batch_execute(&sql)
                .await
                .map_err(|e| StoreError::Backend(format!("test database server: {sql}: {e}")))?;
        }
        Ok(TestDb {
            url: with_database(admin_url, name),
            name: name.to_owned(),
            admin_url: admin_url.to_owned(),
            dropped: false,
        })
    }

    /// A client on this database.
    pub async fn connect(&self) -> Result<tokio_postgres::Client> {
        connect(&self.url).await
    }

    /// Drops the database now, reporting a failure (dropping the value only
    /// tries).
    pub async fn drop_db(mut self) -> Result<()> {
        self.dropped = true;
        execute(&self.admin_url, &drop_statement(&self.name)).await
    }
}

/// A name safe to splice into `CREATE DATABASE` unquoted: lower-case ASCII
/// letters, digits and `_`, not empty.
pub fn is_plain_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn drop_statement(name: &str) -> String {
    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let admin_url = self.admin_url.clone();
        let statement = drop_statement(&self.name);
        // Drop may run inside or outside a runtime: use a private one on a thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| StoreError::Backend(format!("runtime: {e}")))?;
            runtime.block_on(execute(&admin_url, &statement))
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
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
