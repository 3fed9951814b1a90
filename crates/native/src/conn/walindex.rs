//! Readers keep their implicit read transaction between statements while
//! nothing was committed: the WAL-index header (through SQLite's own
//! mapping of the `-shm` file) tells. The comparison logic is in the core
//! crate (`alkdev_storage_core::walindex`); this is the mapping and the
//! transaction handling. See docs/0002-reader-fast-path.md.

use super::control::Control;
use super::Conn;
use alkdev_storage_core::walindex::read_header;
use rusqlite::ffi;
use std::ptr;

/// Pointer to the first copy of the WAL-index header inside SQLite's
/// mapping of region 0 of the `-shm` file; valid while the connection is open.
pub struct ShmHeader(*const u32);

/// Region 0 of the `-shm` mapping of connection `db`'s main database file,
/// through the VFS `xShmMap` (SQLite's own mapping, shared by every
/// connection of this process on the file). Also used by the process-wide
/// update watcher (`crate::watcher`).
///
/// # Safety
/// `db` is an open connection in WAL mode that has read the database at
/// least once; the region stays mapped until it closes.
pub(crate) unsafe fn map_region0(db: *mut ffi::sqlite3) -> Option<*const u32> {
    let mut file: *mut ffi::sqlite3_file = ptr::null_mut();
    let rc = ffi::sqlite3_file_control(
        db,
        c"main".as_ptr(),
        ffi::SQLITE_FCNTL_FILE_POINTER,
        &mut file as *mut _ as *mut std::ffi::c_void,
    );
    if rc != ffi::SQLITE_OK || file.is_null() || (*file).pMethods.is_null() {
        return None;
    }
    let methods = &*(*file).pMethods;
    if methods.iVersion < 2 {
        return None;
    }
    let shm_map = methods.xShmMap?;
    let mut region: *mut std::ffi::c_void = ptr::null_mut();
    // Region 0, WALINDEX_PGSZ (32 KiB), do not extend.
    let rc = shm_map(file, 0, 32768, 0, &mut region);
    if rc != ffi::SQLITE_OK || region.is_null() {
        return None;
    }
    Some(region as *const u32)
}

impl Conn {
    /// The WAL-index header, through SQLite's own mapping of the `-shm` file
    /// (the VFS `xShmMap` of this connection's main database file).
    ///
    /// Never open the `-shm` (or any database) file ourselves: closing a
    /// descriptor drops every POSIX lock this process holds on that file,
    /// including SQLite's, which would let other processes write under our
    /// feet. The region stays mapped until the connection closes.
    pub(super) fn map_shm(&self) -> Option<ShmHeader> {
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .ok()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return None;
        }
        self.conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            })
            .ok()?;
        // SAFETY: the connection is open and in WAL mode.
        unsafe { map_region0(self.db) }.map(ShmHeader)
    }

    /// The writer: map the WAL-index header and read the auto-checkpoint
    /// threshold, so [`Conn::checkpoint_near`] can tell when a commit may
    /// run a checkpoint.
    pub(super) fn watch_checkpoints(&mut self) {
        self.wal_hdr = self.map_shm();
        self.autockpt = self
            .conn
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get::<_, i64>(0))
            .map(|n| n.clamp(0, i64::from(u32::MAX)) as u32)
            .unwrap_or(0);
    }

    /// The WAL holds nearly enough frames for the next commit to run an
    /// automatic checkpoint (milliseconds of page copying and an fsync):
    /// within `margin` frames of the threshold. False when unknown.
    pub fn checkpoint_near(&self, margin: u32) -> bool {
        let Some(hdr) = &self.wal_hdr else {
            return false;
        };
        if self.autockpt == 0 {
            return false;
        }
        // SAFETY: the region stays mapped while the connection is open.
        let h = unsafe { read_header(hdr.0) };
        // WalIndexHdr: mxFrame is the u32 at byte offset 16.
        h[4].saturating_add(margin) >= self.autockpt
    }

    /// Readers, before a statement outside any session: keep the implicit
    /// read transaction if nothing was committed since it began (the header
    /// of the WAL index is unchanged), else start a fresh one. Reusing it
    /// saves the shared-memory lock round trip (two fcntl calls) that each
    /// autocommit read would otherwise pay, while every statement still
    /// sees the latest committed state. Without the mapping: autocommit.
    #[inline]
    pub fn fresh_read(&mut self) {
        let Some(shm) = &self.shm else { return };
        // SAFETY: the region stays mapped while the connection is open.
        let h = unsafe { read_header(shm.0) };
        if self.snap.is_current(&h) {
            return;
        }
        self.end_read();
        // Capture the header *before* the read transaction starts: a commit
        // in between only makes us restart once more, never read stale data.
        if self.raw_control(Control::BeginDeferred).is_ok() {
            self.snap.began(h);
        }
    }

    /// End the implicit read transaction, if any (no GIL needed).
    pub fn end_read(&mut self) {
        if self.snap.take() && !self.autocommit() {
            let _ = self.raw_control(Control::Commit);
        }
    }

    pub fn has_open_read(&self) -> bool {
        self.snap.is_open()
    }

    /// Forget the implicit read transaction without ending it (the caller
    /// rolls back).
    pub(super) fn forget_read(&mut self) {
        self.snap.take();
    }
}
