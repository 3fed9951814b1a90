//! PEP 249 exception hierarchy and the mapping from SQLite result codes.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyMemoryError};
use pyo3::prelude::*;
use rusqlite::ffi;
use std::ffi::CStr;

create_exception!(alkdev_storage, Warning, PyException, "PEP 249 Warning.");
create_exception!(
    alkdev_storage,
    Error,
    PyException,
    "Base of every database error (PEP 249)."
);
create_exception!(
    alkdev_storage,
    InterfaceError,
    Error,
    "Misuse of the interface: closed objects, ended transactions."
);
create_exception!(
    alkdev_storage,
    DatabaseError,
    Error,
    "Errors reported by the database."
);
create_exception!(
    alkdev_storage,
    DataError,
    DatabaseError,
    "Problems with the processed data (too big, not UTF-8)."
);
create_exception!(
    alkdev_storage,
    OperationalError,
    DatabaseError,
    "Errors in the database's operation (locked, I/O, bad SQL)."
);
create_exception!(
    alkdev_storage,
    IntegrityError,
    DatabaseError,
    "Constraint violations."
);
create_exception!(
    alkdev_storage,
    InternalError,
    DatabaseError,
    "SQLite internal errors."
);
create_exception!(
    alkdev_storage,
    ProgrammingError,
    DatabaseError,
    "Programming errors: wrong parameter count, misuse."
);
create_exception!(
    alkdev_storage,
    NotSupportedError,
    DatabaseError,
    "A feature SQLite or this session does not support."
);

/// Name of an (extended) SQLite result code, e.g. `SQLITE_CONSTRAINT_UNIQUE`.
pub fn code_name(code: i32) -> String {
    let name = match code {
        0 => "SQLITE_OK",
        1 => "SQLITE_ERROR",
        2 => "SQLITE_INTERNAL",
        3 => "SQLITE_PERM",
        4 => "SQLITE_ABORT",
        5 => "SQLITE_BUSY",
        6 => "SQLITE_LOCKED",
        7 => "SQLITE_NOMEM",
        8 => "SQLITE_READONLY",
        9 => "SQLITE_INTERRUPT",
        10 => "SQLITE_IOERR",
        11 => "SQLITE_CORRUPT",
        12 => "SQLITE_NOTFOUND",
        13 => "SQLITE_FULL",
        14 => "SQLITE_CANTOPEN",
        15 => "SQLITE_PROTOCOL",
        16 => "SQLITE_EMPTY",
        17 => "SQLITE_SCHEMA",
        18 => "SQLITE_TOOBIG",
        19 => "SQLITE_CONSTRAINT",
        20 => "SQLITE_MISMATCH",
        21 => "SQLITE_MISUSE",
        22 => "SQLITE_NOLFS",
        23 => "SQLITE_AUTH",
        24 => "SQLITE_FORMAT",
        25 => "SQLITE_RANGE",
        26 => "SQLITE_NOTADB",
        27 => "SQLITE_NOTICE",
        28 => "SQLITE_WARNING",
        100 => "SQLITE_ROW",
        101 => "SQLITE_DONE",
        257 => "SQLITE_ERROR_MISSING_COLLSEQ",
        513 => "SQLITE_ERROR_RETRY",
        769 => "SQLITE_ERROR_SNAPSHOT",
        516 => "SQLITE_ABORT_ROLLBACK",
        261 => "SQLITE_BUSY_RECOVERY",
        517 => "SQLITE_BUSY_SNAPSHOT",
        773 => "SQLITE_BUSY_TIMEOUT",
        262 => "SQLITE_LOCKED_SHAREDCACHE",
        518 => "SQLITE_LOCKED_VTAB",
        264 => "SQLITE_READONLY_RECOVERY",
        520 => "SQLITE_READONLY_CANTLOCK",
        776 => "SQLITE_READONLY_ROLLBACK",
        1032 => "SQLITE_READONLY_DBMOVED",
        1288 => "SQLITE_READONLY_CANTINIT",
        1544 => "SQLITE_READONLY_DIRECTORY",
        266 => "SQLITE_IOERR_READ",
        522 => "SQLITE_IOERR_SHORT_READ",
        778 => "SQLITE_IOERR_WRITE",
        1034 => "SQLITE_IOERR_FSYNC",
        1290 => "SQLITE_IOERR_DIR_FSYNC",
        1546 => "SQLITE_IOERR_TRUNCATE",
        1802 => "SQLITE_IOERR_FSTAT",
        2058 => "SQLITE_IOERR_UNLOCK",
        2314 => "SQLITE_IOERR_RDLOCK",
        2570 => "SQLITE_IOERR_DELETE",
        3082 => "SQLITE_IOERR_NOMEM",
        3338 => "SQLITE_IOERR_ACCESS",
        3594 => "SQLITE_IOERR_CHECKRESERVEDLOCK",
        3850 => "SQLITE_IOERR_LOCK",
        4106 => "SQLITE_IOERR_CLOSE",
        4618 => "SQLITE_IOERR_SHMOPEN",
        4874 => "SQLITE_IOERR_SHMSIZE",
        5386 => "SQLITE_IOERR_SHMMAP",
        5642 => "SQLITE_IOERR_SEEK",
        6154 => "SQLITE_IOERR_MMAP",
        267 => "SQLITE_CORRUPT_VTAB",
        270 => "SQLITE_CANTOPEN_NOTEMPDIR",
        526 => "SQLITE_CANTOPEN_ISDIR",
        782 => "SQLITE_CANTOPEN_FULLPATH",
        1038 => "SQLITE_CANTOPEN_CONVPATH",
        275 => "SQLITE_CONSTRAINT_CHECK",
        531 => "SQLITE_CONSTRAINT_COMMITHOOK",
        787 => "SQLITE_CONSTRAINT_FOREIGNKEY",
        1043 => "SQLITE_CONSTRAINT_FUNCTION",
        1299 => "SQLITE_CONSTRAINT_NOTNULL",
        1555 => "SQLITE_CONSTRAINT_PRIMARYKEY",
        1811 => "SQLITE_CONSTRAINT_TRIGGER",
        2067 => "SQLITE_CONSTRAINT_UNIQUE",
        2323 => "SQLITE_CONSTRAINT_VTAB",
        2579 => "SQLITE_CONSTRAINT_ROWID",
        2835 => "SQLITE_CONSTRAINT_PINNED",
        3091 => "SQLITE_CONSTRAINT_DATATYPE",
        283 => "SQLITE_NOTICE_RECOVER_WAL",
        539 => "SQLITE_NOTICE_RECOVER_ROLLBACK",
        284 => "SQLITE_WARNING_AUTOINDEX",
        279 => "SQLITE_AUTH_USER",
        _ => {
            let primary = code & 0xff;
            if primary != code {
                return format!("{}_{}", code_name(primary), code >> 8);
            }
            return format!("SQLITE_UNKNOWN_{code}");
        }
    };
    name.to_string()
}

/// Build the Python exception for an extended SQLite result `code` with `msg`.
/// Class selection follows the stdlib `sqlite3` module so code written for it
/// catches the same classes.
pub fn sqlite_error(py: Python<'_>, code: i32, msg: &str) -> PyErr {
    let primary = code & 0xff;
    let err = match primary {
        ffi::SQLITE_NOMEM => return PyMemoryError::new_err(msg.to_string()),
        ffi::SQLITE_INTERNAL | ffi::SQLITE_NOTFOUND => InternalError::new_err(msg.to_string()),
        ffi::SQLITE_CONSTRAINT | ffi::SQLITE_MISMATCH => IntegrityError::new_err(msg.to_string()),
        ffi::SQLITE_TOOBIG => DataError::new_err(msg.to_string()),
        ffi::SQLITE_MISUSE => ProgrammingError::new_err(msg.to_string()),
        ffi::SQLITE_RANGE => ProgrammingError::new_err(msg.to_string()),
        ffi::SQLITE_CORRUPT | ffi::SQLITE_NOTADB | ffi::SQLITE_FORMAT => {
            DatabaseError::new_err(msg.to_string())
        }
        ffi::SQLITE_ERROR
        | ffi::SQLITE_PERM
        | ffi::SQLITE_ABORT
        | ffi::SQLITE_BUSY
        | ffi::SQLITE_LOCKED
        | ffi::SQLITE_READONLY
        | ffi::SQLITE_INTERRUPT
        | ffi::SQLITE_IOERR
        | ffi::SQLITE_FULL
        | ffi::SQLITE_CANTOPEN
        | ffi::SQLITE_PROTOCOL
        | ffi::SQLITE_EMPTY
        | ffi::SQLITE_SCHEMA
        | ffi::SQLITE_NOLFS
        | ffi::SQLITE_AUTH => OperationalError::new_err(msg.to_string()),
        _ => DatabaseError::new_err(msg.to_string()),
    };
    let value = err.value(py);
    let _ = value.setattr("sqlite_errorcode", code);
    let _ = value.setattr("sqlite_errorname", code_name(code));
    err
}

/// Error for the last failed call on connection `db`.
///
/// # Safety
/// `db` must be a valid open connection handle.
pub unsafe fn last_error(py: Python<'_>, db: *mut ffi::sqlite3) -> PyErr {
    let code = ffi::sqlite3_extended_errcode(db);
    let msg = CStr::from_ptr(ffi::sqlite3_errmsg(db)).to_string_lossy();
    sqlite_error(py, code, &msg)
}

/// Error for a result code without a live connection message.
pub fn code_error(py: Python<'_>, code: i32) -> PyErr {
    let msg = unsafe { CStr::from_ptr(ffi::sqlite3_errstr(code)) }.to_string_lossy();
    sqlite_error(py, code, &msg)
}

/// Convert a rusqlite / honker-core error into the PEP 249 hierarchy.
pub fn rusqlite_error(py: Python<'_>, e: &rusqlite::Error) -> PyErr {
    match e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let text = msg.clone().unwrap_or_else(|| f.to_string());
            sqlite_error(py, f.extended_code, &text)
        }
        other => OperationalError::new_err(other.to_string()),
    }
}

pub fn core_error(py: Python<'_>, e: &honker_core::Error) -> PyErr {
    match e {
        honker_core::Error::Sqlite(inner) => rusqlite_error(py, inner),
    }
}

pub fn closed() -> PyErr {
    InterfaceError::new_err("Database is closed")
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Warning", py.get_type::<Warning>())?;
    m.add("Error", py.get_type::<Error>())?;
    m.add("InterfaceError", py.get_type::<InterfaceError>())?;
    m.add("DatabaseError", py.get_type::<DatabaseError>())?;
    m.add("DataError", py.get_type::<DataError>())?;
    m.add("OperationalError", py.get_type::<OperationalError>())?;
    m.add("IntegrityError", py.get_type::<IntegrityError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    m.add("ProgrammingError", py.get_type::<ProgrammingError>())?;
    m.add("NotSupportedError", py.get_type::<NotSupportedError>())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::code_name;

    #[test]
    fn names_primary_and_extended_codes() {
        assert_eq!(code_name(19), "SQLITE_CONSTRAINT");
        assert_eq!(code_name(2067), "SQLITE_CONSTRAINT_UNIQUE");
        assert_eq!(code_name(517), "SQLITE_BUSY_SNAPSHOT");
        // Unknown extended code falls back to its primary name.
        assert_eq!(code_name(10 | (99 << 8)), "SQLITE_IOERR_99");
        assert_eq!(code_name(77), "SQLITE_UNKNOWN_77");
    }
}
