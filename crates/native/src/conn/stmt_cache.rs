//! The statement caches of one connection. Statements prepared through
//! `Database.prepare()` live in `slots`, indexed by the statement's slot
//! number: a lookup is a bounds check and an id compare, with no hashing of
//! the SQL text. Ad-hoc SQL strings go through a small per-connection cache
//! keyed by the text (the convenience path).

use super::{Conn, PrepareError, StmtShared};
use crate::authorize::{self, Classified};
use alkdev_storage_core::classify::Info;
use rusqlite::ffi;

/// Upper bound on the ad-hoc SQL cache of one connection.
const ADHOC_CAPACITY: usize = 256;

impl Conn {
    /// Handle for a `Statement` object, compiled on first use on this
    /// connection and reused afterwards.
    #[inline]
    pub fn stmt_for(&mut self, s: &StmtShared) -> Result<*mut ffi::sqlite3_stmt, PrepareError> {
        if let Some(Some((id, p))) = self.slots.get(s.slot) {
            if *id == s.id {
                return Ok(*p);
            }
        }
        let p = self.prepare_raw(&s.sql)?;
        self.adopt(s.slot, s.id, p);
        Ok(p)
    }

    /// Keep a freshly prepared handle for Statement (`slot`, `id`).
    pub fn adopt(&mut self, slot: usize, id: u64, p: *mut ffi::sqlite3_stmt) {
        if self.slots.len() <= slot {
            self.slots.resize(slot + 1, None);
        }
        if let Some((_, old)) = self.slots[slot].replace((id, p)) {
            unsafe { ffi::sqlite3_finalize(old) };
        }
    }

    /// Compile `sql` for the first time and classify it (the authorizer is
    /// installed for this compile only). `runs_here`: the statement will run
    /// on this connection, so a PRAGMA setting may take effect here while
    /// compiling, as SQLite does; on a reader outside a session it never does
    /// (the handle is then null: the statement runs on the writer).
    pub fn prepare_classified(
        &self,
        sql: &str,
        runs_here: bool,
    ) -> Result<Classified, PrepareError> {
        // SAFETY: `self.db` is this open connection, used by this thread.
        unsafe { authorize::prepare_classified(self.db, || self.prepare_raw(sql), runs_here) }
    }

    /// Handle for ad-hoc SQL text (cached per connection by the text, with
    /// its classification). Null only for a PRAGMA setting met on a reader
    /// outside a session (kind `Connection`: never run there).
    pub fn stmt_for_sql(
        &mut self,
        sql: &str,
        runs_here: bool,
    ) -> Result<(*mut ffi::sqlite3_stmt, Info), PrepareError> {
        if let Some(&(p, info)) = self.adhoc.get(sql) {
            return Ok((p, info));
        }
        let c = self.prepare_classified(sql, runs_here || self.writer)?;
        let info = c.class.info;
        if c.stmt.is_null() {
            return Ok((c.stmt, info));
        }
        if self.adhoc.len() >= ADHOC_CAPACITY {
            for (_, (s, _)) in self.adhoc.drain() {
                unsafe { ffi::sqlite3_finalize(s) };
            }
        }
        self.adhoc.insert(sql.into(), (c.stmt, info));
        Ok((c.stmt, info))
    }
}
