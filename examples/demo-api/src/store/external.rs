//! The PostgreSQL store and the Redis counter (the `reference` feature).

use std::sync::Arc;

use crate::db::{DbError, Item};

/// The Redis key counting the items added through any replica.
pub const COUNTER_KEY: &str = "demo:items_added";

const PG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (
    id         BIGSERIAL PRIMARY KEY,
    text       TEXT NOT NULL,
    created_by TEXT NOT NULL
);
";

const PG_SEED: [&str; 3] = [
    "Welcome to the berth reference stack",
    "Every replica of demo-api shares this PostgreSQL database",
    "Add an item below: Redis counts it",
];

/// A PostgreSQL connection, made again when it breaks.
#[derive(Debug)]
pub struct Postgres {
    url: String,
    client: tokio::sync::Mutex<Option<Arc<tokio_postgres::Client>>>,
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        DbError::Task(format!("postgres: {e}"))
    }
}

/// Connects to `url`; the connection runs on a task of its own.
async fn connect(url: &str) -> Result<tokio_postgres::Client, DbError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("demo-api: postgres connection ended: {e}");
        }
    });
    Ok(client)
}

/// Creates the table and seeds it when empty; idempotent (a transaction
/// with the table locked, so that two runs do not seed twice).
pub async fn migrate_postgres(url: &str) -> Result<usize, DbError> {
    let mut client = connect(url).await?;
    client.batch_execute(PG_SCHEMA).await?;
    let tx = client.transaction().await?;
    tx.batch_execute("LOCK TABLE items IN EXCLUSIVE MODE")
        .await?;
    let count: i64 = tx
        .query_one("SELECT count(*) FROM items", &[])
        .await?
        .get(0);
    if count == 0 {
        for text in PG_SEED {
            tx.execute(
                "INSERT INTO items (text, created_by) VALUES ($1, 'migrate')",
                &[&text],
            )
            .await?;
        }
    }
    let count: i64 = tx
        .query_one("SELECT count(*) FROM items", &[])
        .await?
        .get(0);
    tx.commit().await?;
    Ok(usize::try_from(count).unwrap_or(0))
}

impl Postgres {
    /// Checks that the database answers and has the table.
    pub async fn open(url: &str) -> Result<Postgres, DbError> {
        let client = connect(url).await?;
        client
            .query_one("SELECT count(*) FROM items", &[])
            .await
            .map_err(|e| {
                DbError::SchemaMissing(format!(
                    "database schema missing ({e}): run `demo-api migrate` first"
                ))
            })?;
        Ok(Postgres {
            url: url.to_string(),
            client: tokio::sync::Mutex::new(Some(Arc::new(client))),
        })
    }

    async fn client(&self) -> Result<Arc<tokio_postgres::Client>, DbError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let c = Arc::new(connect(&self.url).await?);
        *slot = Some(c.clone());
        Ok(c)
    }
}

fn item(row: &tokio_postgres::Row) -> Item {
    Item {
        id: row.get(0),
        text: row.get(1),
        created_by: row.get(2),
    }
}

impl Postgres {
    pub(super) async fn list(&self, limit: Option<u32>) -> Result<Vec<u8>, DbError> {
        let client = self.client().await?;
        let rows = match limit {
            None => {
                client
                    .query("SELECT id, text, created_by FROM items ORDER BY id", &[])
                    .await?
            }
            Some(n) => {
                client
                    .query(
                        "SELECT id, text, created_by FROM (SELECT id, text, created_by FROM items ORDER BY id DESC LIMIT $1) AS last ORDER BY id",
                        &[&i64::from(n)],
                    )
                    .await?
            }
        };
        let items: Vec<Item> = rows.iter().map(item).collect();
        Ok(serde_json::to_vec(&items)?)
    }

    pub(super) async fn insert(&self, text: &str, created_by: &str) -> Result<Item, DbError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO items (text, created_by) VALUES ($1, $2) RETURNING id, text, created_by",
                &[&text, &created_by],
            )
            .await?;
        Ok(item(&row))
    }
}

/// How long the first connection to Redis may take.
const REDIS_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The Redis counter, when `REDIS_URL` is set.
#[derive(Clone)]
pub struct Counter {
    connection: redis::aio::ConnectionManager,
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Counter")
    }
}

impl Counter {
    /// Connects to `REDIS_URL`; `Ok(None)` when it is not set.
    pub async fn from_env() -> Result<Option<Counter>, String> {
        let Some(url) = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let client = redis::Client::open(url.as_str()).map_err(|e| format!("REDIS_URL: {e}"))?;
        // The manager retries on its own; a server that refuses us for
        // good (protected mode, a wrong port) must not hang the start.
        let connection = tokio::time::timeout(
            REDIS_CONNECT_TIMEOUT,
            redis::aio::ConnectionManager::new(client),
        )
        .await
        .map_err(|_| {
            format!(
                "cannot reach Redis at {url} within {} s",
                REDIS_CONNECT_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("cannot reach Redis at {url}: {e}"))?;
        Ok(Some(Counter { connection }))
    }

    /// Counts one more item; the new count.
    pub async fn increment(&self) -> Result<i64, String> {
        let mut c = self.connection.clone();
        redis::cmd("INCR")
            .arg(COUNTER_KEY)
            .query_async(&mut c)
            .await
            .map_err(|e| e.to_string())
    }

    /// The count now (0 before the first item).
    pub async fn get(&self) -> Result<i64, String> {
        let mut c = self.connection.clone();
        let v: Option<i64> = redis::cmd("GET")
            .arg(COUNTER_KEY)
            .query_async(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        Ok(v.unwrap_or(0))
    }
}
