//! SQLite result codes: their names (`SQLITE_CONSTRAINT_UNIQUE`) and the
//! PEP 249 exception class each one maps to.

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

/// The PEP 249 class an SQLite result code is reported as. The choice
/// follows the stdlib `sqlite3` module, so code written for it catches the
/// same classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// SQLITE_NOMEM: Python's MemoryError.
    NoMemory,
    InternalError,
    IntegrityError,
    DataError,
    ProgrammingError,
    OperationalError,
    DatabaseError,
}

/// Primary result codes (the low byte of an extended code).
pub mod primary {
    pub const ERROR: i32 = 1;
    pub const INTERNAL: i32 = 2;
    pub const PERM: i32 = 3;
    pub const ABORT: i32 = 4;
    pub const BUSY: i32 = 5;
    pub const LOCKED: i32 = 6;
    pub const NOMEM: i32 = 7;
    pub const READONLY: i32 = 8;
    pub const INTERRUPT: i32 = 9;
    pub const IOERR: i32 = 10;
    pub const CORRUPT: i32 = 11;
    pub const NOTFOUND: i32 = 12;
    pub const FULL: i32 = 13;
    pub const CANTOPEN: i32 = 14;
    pub const PROTOCOL: i32 = 15;
    pub const EMPTY: i32 = 16;
    pub const SCHEMA: i32 = 17;
    pub const TOOBIG: i32 = 18;
    pub const CONSTRAINT: i32 = 19;
    pub const MISMATCH: i32 = 20;
    pub const MISUSE: i32 = 21;
    pub const NOLFS: i32 = 22;
    pub const AUTH: i32 = 23;
    pub const FORMAT: i32 = 24;
    pub const RANGE: i32 = 25;
    pub const NOTADB: i32 = 26;
}

/// The class an (extended) result `code` is raised as.
pub fn error_class(code: i32) -> ErrorClass {
    use primary::*;
    match code & 0xff {
        NOMEM => ErrorClass::NoMemory,
        INTERNAL | NOTFOUND => ErrorClass::InternalError,
        CONSTRAINT | MISMATCH => ErrorClass::IntegrityError,
        TOOBIG => ErrorClass::DataError,
        MISUSE | RANGE => ErrorClass::ProgrammingError,
        CORRUPT | NOTADB | FORMAT => ErrorClass::DatabaseError,
        ERROR | PERM | ABORT | BUSY | LOCKED | READONLY | INTERRUPT | IOERR | FULL | CANTOPEN
        | PROTOCOL | EMPTY | SCHEMA | NOLFS | AUTH => ErrorClass::OperationalError,
        _ => ErrorClass::DatabaseError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_primary_and_extended_codes() {
        assert_eq!(code_name(19), "SQLITE_CONSTRAINT");
        assert_eq!(code_name(2067), "SQLITE_CONSTRAINT_UNIQUE");
        assert_eq!(code_name(517), "SQLITE_BUSY_SNAPSHOT");
        // Unknown extended code falls back to its primary name.
        assert_eq!(code_name(10 | (99 << 8)), "SQLITE_IOERR_99");
        assert_eq!(code_name(77), "SQLITE_UNKNOWN_77");
    }

    #[test]
    fn classes_follow_the_primary_code() {
        assert_eq!(error_class(2067), ErrorClass::IntegrityError);
        assert_eq!(error_class(5), ErrorClass::OperationalError);
        assert_eq!(error_class(517), ErrorClass::OperationalError);
        assert_eq!(error_class(7), ErrorClass::NoMemory);
        assert_eq!(error_class(25), ErrorClass::ProgrammingError);
        assert_eq!(error_class(26), ErrorClass::DatabaseError);
        assert_eq!(error_class(18), ErrorClass::DataError);
        assert_eq!(error_class(99), ErrorClass::DatabaseError);
    }
}
