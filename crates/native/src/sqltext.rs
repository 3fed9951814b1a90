//! SQL keyword parsing: the leading keyword of a statement, trailing
//! trivia after a statement, and the [`StmtInfo`] of a prepared statement.
//! (To be replaced by the statement classifier in the core crate.)

use rusqlite::ffi;

/// How a prepared statement runs.
#[derive(Clone, Copy, Debug)]
pub struct StmtInfo {
    pub readonly: bool,
    pub txn_control: bool,
    /// Must run outside a transaction (VACUUM, some PRAGMAs, ATTACH).
    pub no_wrap: bool,
}

fn leading_keyword(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && (b[i] as char).is_ascii_whitespace() {
            i += 1;
        }
        if b[i..].starts_with(b"--") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if b[i..].starts_with(b"/*") {
            match sql[i + 2..].find("*/") {
                Some(end) => {
                    i += end + 4;
                    continue;
                }
                None => return String::new(),
            }
        }
        break;
    }
    let start = i;
    while i < b.len() && (b[i] as char).is_ascii_alphabetic() {
        i += 1;
    }
    sql[start..i].to_ascii_uppercase()
}

/// True when `s` holds nothing but white space, `;` and comments.
pub fn only_trivia(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() || b[i] == b';' {
            i += 1;
        } else if b[i..].starts_with(b"--") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            match s[i + 2..].find("*/") {
                Some(end) => i += end + 4,
                None => return true,
            }
        } else {
            return false;
        }
    }
    true
}

pub fn is_txn_control(sql: &str) -> bool {
    matches!(
        leading_keyword(sql).as_str(),
        "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "SAVEPOINT" | "RELEASE"
    )
}

/// Classification of a prepared statement (`sql` is its text).
pub fn info_of(stmt: *mut ffi::sqlite3_stmt, sql: &str) -> StmtInfo {
    let kw = leading_keyword(sql);
    StmtInfo {
        readonly: unsafe { ffi::sqlite3_stmt_readonly(stmt) } != 0,
        txn_control: matches!(
            kw.as_str(),
            "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "SAVEPOINT" | "RELEASE"
        ),
        no_wrap: matches!(kw.as_str(), "VACUUM" | "PRAGMA" | "ATTACH" | "DETACH"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_keyword_skips_space_and_comments() {
        assert_eq!(leading_keyword("  begin immediate"), "BEGIN");
        assert_eq!(leading_keyword("-- c\n /* x */ Commit"), "COMMIT");
        assert_eq!(leading_keyword("select 1"), "SELECT");
        assert_eq!(leading_keyword(""), "");
        assert!(is_txn_control("SAVEPOINT a"));
        assert!(is_txn_control("end"));
        assert!(!is_txn_control("SELECT 'BEGIN'"));
    }
}
