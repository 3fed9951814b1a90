//! The WAL-index header: has anything been committed since a reader's
//! implicit read transaction began?
//!
//! SQLite keeps two copies of a 48-byte header at the start of the
//! `-shm` mapping; every commit changes it (its change counter, frame
//! count and checksums). A reader that remembers the header it saw just
//! before its read transaction began can keep that transaction while the
//! header is unchanged: it still sees the latest committed state. The
//! native crate obtains the mapping through SQLite's own VFS (see its
//! `walindex.rs`); this module holds the logic, testable on any buffer.

use std::time::{Duration, Instant};

/// Words of one copy of the WAL-index header (48 bytes).
pub const HDR_WORDS: usize = 12;

/// One copy of the header.
pub type Header = [u32; HDR_WORDS];

/// Read the first copy of the header.
///
/// # Safety
/// `p` points at a mapped, readable region of at least 48 bytes, aligned
/// for `u32` (the start of region 0 of SQLite's `-shm` mapping).
#[inline]
pub unsafe fn read_header(p: *const u32) -> Header {
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    let mut h = [0u32; HDR_WORDS];
    for (i, w) in h.iter_mut().enumerate() {
        *w = std::ptr::read_volatile(p.add(i));
    }
    h
}

/// The header seen just before a reader's implicit read transaction
/// began, and when (None: no implicit read transaction is open).
#[derive(Debug)]
pub struct ReadSnapshot {
    seen: Option<Header>,
    at: Instant,
}

impl Default for ReadSnapshot {
    fn default() -> Self {
        ReadSnapshot {
            seen: None,
            at: Instant::now(),
        }
    }
}

impl ReadSnapshot {
    /// An implicit read transaction is open and nothing was committed
    /// since it began (`now` is the header read at this moment).
    #[inline]
    pub fn is_current(&self, now: &Header) -> bool {
        self.seen.as_ref() == Some(now)
    }

    /// An implicit read transaction is open.
    #[inline]
    pub fn is_open(&self) -> bool {
        self.seen.is_some()
    }

    /// A read transaction began; `h` was read *before* it began, so a
    /// commit in between only causes one more restart, never stale data.
    #[inline]
    pub fn began(&mut self, h: Header) {
        self.seen = Some(h);
        self.at = Instant::now();
    }

    /// Forget the transaction; true when one was open (it must be ended).
    #[inline]
    pub fn take(&mut self) -> bool {
        self.seen.take().is_some()
    }

    /// Open and older than `age` (the janitor ends such transactions so an
    /// idle reader does not pin the WAL against checkpoints).
    pub fn older_than(&self, age: Duration) -> bool {
        self.seen.is_some() && self.at.elapsed() >= age
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_read_from_the_mapping_and_compared() {
        let mut region = [0u32; 16];
        region[0] = 3007000;
        region[3] = 7; // change counter
        let h = unsafe { read_header(region.as_ptr()) };
        assert_eq!(h[0], 3007000);
        let mut snap = ReadSnapshot::default();
        assert!(!snap.is_open());
        assert!(!snap.is_current(&h));
        snap.began(h);
        assert!(snap.is_open() && snap.is_current(&h));
        // A commit changes the header: the snapshot is no longer current.
        region[3] = 8;
        let h2 = unsafe { read_header(region.as_ptr()) };
        assert!(!snap.is_current(&h2));
        assert!(snap.take());
        assert!(!snap.take(), "taking twice ends nothing twice");
    }

    #[test]
    fn age_counts_only_while_open() {
        let mut snap = ReadSnapshot::default();
        assert!(!snap.older_than(Duration::ZERO));
        snap.began([0; HDR_WORDS]);
        assert!(snap.older_than(Duration::ZERO));
        assert!(!snap.older_than(Duration::from_secs(3600)));
    }
}
