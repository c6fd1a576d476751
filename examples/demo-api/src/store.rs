//! Where the items live: the shared SQLite file (the default, [`crate::db`])
//! or PostgreSQL when `DATABASE_URL` is a `postgres://` URL; and, when
//! `REDIS_URL` is set, a Redis counter of the items added
//! (`demo:items_added`), shown by `GET /api/counter`.
//!
//! A PostgreSQL or Redis that restarts (a restore, a rolling restart of
//! the database) is reconnected to on the next request.

use std::sync::Arc;

use crate::db::{self, DbError, Item};

// PostgreSQL and Redis clients come with the `reference` feature (on by
// default); without it (the static container image) the types are empty
// and asking for either is an error at start.
#[cfg(feature = "reference")]
mod external;
#[cfg(not(feature = "reference"))]
#[path = "store/without.rs"]
mod external;

pub use external::{Counter, Postgres, migrate_postgres};

/// `DATABASE_URL`, when it names PostgreSQL.
pub fn postgres_url() -> Option<String> {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
}

/// The items' store.
#[derive(Debug)]
pub enum Store {
    Sqlite(Arc<db::Db>),
    Postgres(Postgres),
}

impl Store {
    /// Every item in id order, or the last `limit`, as JSON.
    pub async fn list(&self, limit: Option<u32>) -> Result<Vec<u8>, DbError> {
        match self {
            Store::Sqlite(db) => {
                db.run(move |conn| {
                    let items = db::list_items(conn, limit)?;
                    Ok::<_, DbError>(serde_json::to_vec(&items)?)
                })
                .await
            }
            Store::Postgres(pg) => pg.list(limit).await,
        }
    }

    /// Adds an item.
    pub async fn insert(&self, text: String, created_by: Arc<str>) -> Result<Item, DbError> {
        match self {
            Store::Sqlite(db) => {
                db.run(move |conn| db::insert_item(conn, &text, &created_by))
                    .await
            }
            Store::Postgres(pg) => pg.insert(&text, &created_by).await,
        }
    }
}
