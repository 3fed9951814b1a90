//! Opening the writer and the readers: PRAGMAs, honker's SQL functions,
//! and the read-only guards of readers.

use super::Conn;
use alkdev_storage_core::classify::WRITING_FUNCTIONS;
use rusqlite::ffi;
use std::time::Duration;

/// `honker_core::open_conn` with one difference: SQLITE_OPEN_NO_MUTEX. A
/// Conn is only ever used by the one thread that holds it (writer slot,
/// reader pool, session), so SQLite's per-connection mutex — taken on every
/// API call, including each column read — is pure overhead. Same PRAGMA
/// defaults, applied by honker-core.
fn open_conn(path: &str) -> Result<rusqlite::Connection, honker_core::Error> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    honker_core::apply_default_pragmas(&conn)?;
    Ok(conn)
}

/// On readers, replace honker's writing SQL functions with ones that fail
/// at once with SQLite's read-only error: a safety net behind statement
/// classification, which sends every statement calling them to the writer.
/// (Some of the real ones swallow the `query_only` error of their inner
/// statements and return 0, which would look like "no such job".)
fn disable_writing_functions(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    for &(name, n) in WRITING_FUNCTIONS {
        conn.create_scalar_function(name, n, FunctionFlags::SQLITE_UTF8, |_ctx| {
            Err::<i64, _>(rusqlite::Error::SqliteFailure(
                ffi::Error::new(ffi::SQLITE_READONLY),
                Some("attempt to write a readonly database".into()),
            ))
        })?;
    }
    Ok(())
}

impl Conn {
    /// The writer: honker's PRAGMA defaults, `notify()` and every
    /// `honker_*` SQL function.
    /// `timeout` bounds SQLite's busy waits (see `busy`).
    pub fn open_writer(path: &str, timeout: Duration) -> Result<Conn, honker_core::Error> {
        let conn = open_conn(path)?;
        honker_core::attach_notify(&conn)?;
        honker_core::attach_honker_functions(&conn)?;
        let mut c = Conn::wrap(conn, timeout);
        c.writer = true;
        c.watch_checkpoints();
        Ok(c)
    }

    /// A reader: same PRAGMAs, the honker functions registered (so reading
    /// ones such as `honker_get_job` work) and `query_only` on, so a write
    /// sent to a reader fails instead of bypassing the writer slot.
    pub fn open_reader(path: &str, timeout: Duration) -> Result<Conn, honker_core::Error> {
        let conn = open_conn(path)?;
        honker_core::attach_notify(&conn)?;
        honker_core::attach_honker_functions(&conn)?;
        disable_writing_functions(&conn)?;
        conn.execute_batch("PRAGMA query_only = 1;")?;
        let mut c = Conn::wrap(conn, timeout);
        c.shm = c.map_shm();
        Ok(c)
    }
}
