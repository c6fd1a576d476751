//! The shared SQLite database: schema migration and a tiny connection pool.
//!
//! Several replica processes open the same file. WAL mode lets readers run
//! alongside the single writer, and the busy timeout makes a writer wait for
//! the lock instead of failing with `SQLITE_BUSY`. All calls into SQLite are
//! blocking, so they run on tokio's blocking pool, never on the async threads;
//! a semaphore bounds how many run at once per process.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use serde::Serialize;
use tokio::sync::Semaphore;

/// Schema version stored in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 1;

/// How long a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many SQLite calls run at once in one process.
const MAX_CONCURRENT: usize = 4;

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS items (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    text       TEXT    NOT NULL,
    created_by TEXT    NOT NULL
);
";

const SEED: [&str; 3] = [
    "Welcome to the berth demo",
    "Every replica of demo-api shares this SQLite file",
    "Add an item below and watch which replica answers",
];

/// One row of `items`, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Item {
    pub id: i64,
    pub text: String,
    pub created_by: String,
}

/// Errors of the database layer.
#[derive(Debug)]
pub enum DbError {
    /// The file or the schema is missing or too old: `demo-api migrate` fixes it.
    SchemaMissing(String),
    Sqlite(rusqlite::Error),
    Json(serde_json::Error),
    Io(std::io::Error),
    /// The blocking task panicked or was cancelled.
    Task(String),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SchemaMissing(msg) => write!(f, "{msg}"),
            Self::Sqlite(e) => write!(f, "sqlite: {e}"),
            Self::Json(e) => write!(f, "json: {e}"),
            Self::Io(e) => write!(f, "{e}"),
            Self::Task(e) => write!(f, "database task failed: {e}"),
        }
    }
}

impl std::error::Error for DbError {}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

impl From<serde_json::Error> for DbError {
    fn from(e: serde_json::Error) -> Self {
        Self::Json(e)
    }
}

fn create_parent_dir(path: &Path) -> Result<(), DbError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir).map_err(|e| {
            DbError::Io(std::io::Error::new(
                e.kind(),
                format!("cannot create directory {}: {e}", dir.display()),
            ))
        }),
        _ => Ok(()),
    }
}

/// Settings every connection gets, whoever opens it.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // journal_mode is persistent in the file; setting it again is a no-op.
    let _mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

/// Creates or updates the schema; idempotent, and safe to run while replicas
/// are up or while another `migrate` runs (it takes the write lock first).
/// Returns the number of items in the table afterwards.
pub fn migrate(path: &Path) -> Result<usize, DbError> {
    create_parent_dir(path)?;
    let mut conn = Connection::open(path)?;
    configure(&conn)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version < 1 {
        tx.execute_batch(SCHEMA_V1)?;
        let seeded: i64 = tx.query_row("SELECT count(*) FROM items", [], |row| row.get(0))?;
        if seeded == 0 {
            let mut insert = tx.prepare("INSERT INTO items (text, created_by) VALUES (?1, ?2)")?;
            for text in SEED {
                insert.execute(params![text, "migrate"])?;
            }
        }
    }
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    let count: i64 = tx.query_row("SELECT count(*) FROM items", [], |row| row.get(0))?;
    tx.commit()?;
    Ok(usize::try_from(count).unwrap_or(0))
}

/// Opens an existing, migrated database; never creates one.
fn open_existing(path: &Path) -> Result<Connection, DbError> {
    let missing = || {
        DbError::SchemaMissing(format!(
            "database schema missing in {}: run `demo-api migrate` first",
            path.display()
        ))
    };
    if !path.exists() {
        return Err(missing());
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    configure(&conn)?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let has_items: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'items'",
        [],
        |row| row.get(0),
    )?;
    if !has_items || version < 1 {
        return Err(missing());
    }
    if version < SCHEMA_VERSION {
        return Err(DbError::SchemaMissing(format!(
            "database schema in {} is version {version}, this build needs {SCHEMA_VERSION}: \
             run `demo-api migrate` first",
            path.display()
        )));
    }
    Ok(conn)
}

/// A small pool of connections to one database file.
#[derive(Debug)]
pub struct Db {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl Db {
    /// Opens the database, checking that it has been migrated. Blocking.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        create_parent_dir(path)?;
        let first = open_existing(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            idle: Mutex::new(vec![first]),
            permits: Semaphore::new(MAX_CONCURRENT),
        })
    }

    /// Runs `f` with a pooled connection on the blocking pool.
    pub async fn run<F, R, E>(self: &Arc<Self>, f: F) -> Result<R, DbError>
    where
        F: FnOnce(&Connection) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: Into<DbError>,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| DbError::Task(e.to_string()))?;
        let db = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let pooled = db.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => open_existing(&db.path)?,
            };
            let result = f(&conn);
            db.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
            result.map_err(Into::into)
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
    }
}

/// All items in id order, or the last `limit` of them.
pub fn list_items(conn: &Connection, limit: Option<u32>) -> rusqlite::Result<Vec<Item>> {
    let row_to_item = |row: &rusqlite::Row<'_>| {
        Ok(Item {
            id: row.get(0)?,
            text: row.get(1)?,
            created_by: row.get(2)?,
        })
    };
    match limit {
        None => {
            let mut stmt =
                conn.prepare_cached("SELECT id, text, created_by FROM items ORDER BY id")?;
            stmt.query_map([], row_to_item)?.collect()
        }
        Some(limit) => {
            let mut stmt = conn.prepare_cached(
                "SELECT id, text, created_by FROM \
                 (SELECT id, text, created_by FROM items ORDER BY id DESC LIMIT ?1) ORDER BY id",
            )?;
            stmt.query_map([limit], row_to_item)?.collect()
        }
    }
}

/// Inserts one item and returns it.
pub fn insert_item(conn: &Connection, text: &str, created_by: &str) -> rusqlite::Result<Item> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO items (text, created_by) VALUES (?1, ?2) RETURNING id, text, created_by",
    )?;
    stmt.query_row(params![text, created_by], |row| {
        Ok(Item {
            id: row.get(0)?,
            text: row.get(1)?,
            created_by: row.get(2)?,
        })
    })
}
