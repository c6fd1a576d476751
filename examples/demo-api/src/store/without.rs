//! Without the `reference` feature: no PostgreSQL, no Redis; asking for
//! either is an error at start.

use crate::db::{DbError, Item};

/// No PostgreSQL in this build.
#[derive(Debug)]
pub enum Postgres {}

/// No Redis in this build.
#[derive(Debug, Clone)]
pub enum Counter {}

fn unsupported(what: &str) -> String {
    format!("this demo-api was built without the `reference` feature: no {what}")
}

pub async fn migrate_postgres(_url: &str) -> Result<usize, DbError> {
    Err(DbError::Task(unsupported("PostgreSQL (DATABASE_URL)")))
}

impl Postgres {
    pub async fn open(_url: &str) -> Result<Postgres, DbError> {
        Err(DbError::Task(unsupported("PostgreSQL (DATABASE_URL)")))
    }

    pub(super) async fn list(&self, _limit: Option<u32>) -> Result<Vec<u8>, DbError> {
        match *self {}
    }

    pub(super) async fn insert(&self, _text: &str, _by: &str) -> Result<Item, DbError> {
        match *self {}
    }
}

impl Counter {
    pub async fn from_env() -> Result<Option<Counter>, String> {
        match std::env::var("REDIS_URL") {
            Ok(u) if !u.is_empty() => Err(unsupported("Redis (REDIS_URL)")),
            _ => Ok(None),
        }
    }

    pub async fn increment(&self) -> Result<i64, String> {
        match *self {}
    }

    pub async fn get(&self) -> Result<i64, String> {
        match *self {}
    }
}
