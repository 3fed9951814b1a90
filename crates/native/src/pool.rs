//! The single writer slot and the bounded, lazily opened reader pool.
//!
//! These follow honker-core's `Writer` / `Readers` exactly (a condvar-guarded
//! slot; a pool that opens connections on demand up to `max`, then waits),
//! but hold [`Conn`] — a connection *with its prepared statement handles* —
//! instead of a bare `rusqlite::Connection`, so statements stay compiled per
//! connection and are finalized before the connection closes. See
//! docs/0001-own-connection-slots.md.

use crate::conn::Conn;
use crate::errors::{self, ProgrammingError};
use crate::functions::Registry;
use parking_lot::{Condvar, Mutex};
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

thread_local! {
    static THREAD_TAG: u8 = const { 0 };
}

/// A process-unique, non-zero id for the calling thread.
pub fn thread_tag() -> usize {
    THREAD_TAG.with(|t| t as *const u8 as usize)
}

fn remove_one(v: &mut Vec<usize>, tag: usize) {
    if let Some(i) = v.iter().position(|&h| h == tag) {
        v.swap_remove(i);
    }
}

pub struct WriterSlot {
    slot: Mutex<Option<Conn>>,
    available: Condvar,
    closed: AtomicBool,
    /// Thread that holds the writer (0 when free), to turn a same-thread
    /// re-acquire — a certain deadlock — into a clear error.
    owner: AtomicUsize,
    funcs: Arc<Registry>,
}

impl WriterSlot {
    pub fn new(conn: Conn, funcs: Arc<Registry>) -> Self {
        Self {
            slot: Mutex::new(Some(conn)),
            available: Condvar::new(),
            closed: AtomicBool::new(false),
            owner: AtomicUsize::new(0),
            funcs,
        }
    }

    /// Take the writer. Uncontended: no GIL release. Contended: wait with
    /// the GIL released (threads queue instead of getting SQLITE_BUSY).
    pub fn acquire(&self, py: Python<'_>) -> PyResult<Conn> {
        if self.closed.load(Ordering::Acquire) {
            return Err(errors::closed());
        }
        if let Some(mut c) = self.slot.lock().take() {
            self.owner.store(thread_tag(), Ordering::Relaxed);
            self.funcs.apply(&mut c);
            return Ok(c);
        }
        let me = thread_tag();
        if self.owner.load(Ordering::Relaxed) == me {
            return Err(ProgrammingError::new_err(
                "this thread already holds the writer in an open transaction; \
                 run the statement through that transaction (tx.execute) instead",
            ));
        }
        let got = py.detach(|| {
            let mut guard = self.slot.lock();
            loop {
                if self.closed.load(Ordering::Acquire) {
                    return None;
                }
                if let Some(c) = guard.take() {
                    return Some(c);
                }
                self.available.wait(&mut guard);
            }
        });
        match got {
            Some(mut c) => {
                self.owner.store(me, Ordering::Relaxed);
                self.funcs.apply(&mut c);
                Ok(c)
            }
            None => Err(errors::closed()),
        }
    }

    /// Give the writer back. After close the connection is dropped instead.
    pub fn release(&self, conn: Conn) {
        self.owner.store(0, Ordering::Relaxed);
        if self.closed.load(Ordering::Acquire) {
            drop(conn);
            return;
        }
        let mut guard = self.slot.lock();
        *guard = Some(conn);
        drop(guard);
        self.available.notify_one();
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let conn = self.slot.lock().take();
        drop(conn);
        self.available.notify_all();
    }
}

struct ReaderState {
    idle: Vec<Conn>,
    open: usize,
    /// Thread tags of the readers currently taken (one entry each).
    holders: Vec<usize>,
}

/// Stop flag + condvar shared with the janitor thread, and its handle.
type Janitor = (Arc<(Mutex<bool>, Condvar)>, std::thread::JoinHandle<()>);

pub struct ReaderPool {
    state: Arc<Mutex<ReaderState>>,
    available: Condvar,
    closed: Arc<AtomicBool>,
    path: String,
    max: usize,
    janitor: Mutex<Option<Janitor>>,
    funcs: Arc<Registry>,
}

/// How long an idle reader may keep its implicit read transaction (and so
/// pin the WAL against checkpoints) before the janitor ends it.
const IDLE_SNAPSHOT: Duration = Duration::from_millis(100);

impl ReaderPool {
    pub fn new(path: String, max: usize, funcs: Arc<Registry>) -> Self {
        Self {
            state: Arc::new(Mutex::new(ReaderState {
                idle: Vec::new(),
                open: 0,
                holders: Vec::new(),
            })),
            available: Condvar::new(),
            closed: Arc::new(AtomicBool::new(false)),
            path,
            max: max.max(1),
            janitor: Mutex::new(None),
            funcs,
        }
    }

    /// Start the janitor thread (once): every 100 ms it ends the implicit
    /// read transactions of readers idle for longer than IDLE_SNAPSHOT, so
    /// an idle pool never holds old snapshots that stop checkpoints.
    fn ensure_janitor(&self) {
        let mut j = self.janitor.lock();
        if j.is_some() {
            return;
        }
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stop_t = stop.clone();
        let state = self.state.clone();
        let handle = std::thread::Builder::new()
            .name("alkdev-reader-janitor".into())
            .spawn(move || {
                let (flag, cv) = &*stop_t;
                let mut stopped = flag.lock();
                while !*stopped {
                    cv.wait_for(&mut stopped, IDLE_SNAPSHOT);
                    if *stopped {
                        break;
                    }
                    let mut st = state.lock();
                    for c in st.idle.iter_mut() {
                        if c.has_open_read() && c.snap_at.elapsed() >= IDLE_SNAPSHOT {
                            c.end_read();
                        }
                    }
                }
            });
        if let Ok(h) = handle {
            *j = Some((stop, h));
        }
    }

    fn stop_janitor(&self) {
        if let Some((stop, h)) = self.janitor.lock().take() {
            *stop.0.lock() = true;
            stop.1.notify_all();
            let _ = h.join();
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn acquire(&self, py: Python<'_>) -> PyResult<Conn> {
        if self.closed.load(Ordering::Acquire) {
            return Err(errors::closed());
        }
        let me = thread_tag();
        {
            let mut st = self.state.lock();
            if let Some(mut c) = st.idle.pop() {
                st.holders.push(me);
                drop(st);
                c.holder = me;
                self.funcs.apply(&mut c);
                return Ok(c);
            }
            if st.open >= self.max && st.holders.iter().filter(|&&h| h == me).count() >= self.max {
                return Err(ProgrammingError::new_err(format!(
                    "all {} reader connections are held by this thread (open snapshots or \
                     iterators); finish one first, or open the Database with a larger max_readers",
                    self.max
                )));
            }
        }
        // Slow path: open a new reader (I/O) or wait for one, GIL released.
        let got: Result<Conn, Option<honker_core::Error>> = py.detach(|| {
            let mut st = self.state.lock();
            loop {
                if self.closed.load(Ordering::Acquire) {
                    return Err(None);
                }
                if let Some(c) = st.idle.pop() {
                    st.holders.push(me);
                    return Ok(c);
                }
                if st.open < self.max {
                    st.open += 1;
                    st.holders.push(me);
                    drop(st);
                    return match Conn::open_reader(&self.path) {
                        Ok(c) => {
                            self.ensure_janitor();
                            Ok(c)
                        }
                        Err(e) => {
                            let mut st = self.state.lock();
                            st.open -= 1;
                            remove_one(&mut st.holders, me);
                            drop(st);
                            self.available.notify_one();
                            Err(Some(e))
                        }
                    };
                }
                self.available.wait(&mut st);
            }
        });
        match got {
            Ok(mut c) => {
                c.holder = me;
                self.funcs.apply(&mut c);
                if self.closed.load(Ordering::Acquire) {
                    self.discard(c);
                    return Err(errors::closed());
                }
                Ok(c)
            }
            Err(None) => Err(errors::closed()),
            Err(Some(e)) => Err(errors::core_error(py, &e)),
        }
    }

    pub fn release(&self, conn: Conn) {
        if self.closed.load(Ordering::Acquire) {
            self.discard(conn);
            return;
        }
        let mut st = self.state.lock();
        remove_one(&mut st.holders, conn.holder);
        st.idle.push(conn);
        drop(st);
        self.available.notify_one();
    }

    /// Drop a connection for good (after close, or when it is unusable).
    pub fn discard(&self, conn: Conn) {
        let holder = conn.holder;
        drop(conn);
        let mut st = self.state.lock();
        st.open = st.open.saturating_sub(1);
        remove_one(&mut st.holders, holder);
        drop(st);
        self.available.notify_one();
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.stop_janitor();
        let idle: Vec<Conn> = {
            let mut st = self.state.lock();
            let n = st.idle.len();
            st.open -= n;
            std::mem::take(&mut st.idle)
        };
        drop(idle);
        self.available.notify_all();
    }

    pub fn open_count(&self) -> usize {
        self.state.lock().open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::Registry;

    fn temp_db(tag: &str) -> (std::path::PathBuf, String) {
        let dir = std::env::temp_dir().join(format!("alk-pool-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db").to_str().unwrap().to_string();
        (dir, path)
    }

    #[test]
    fn writer_slot_refuses_a_same_thread_reacquire_and_queues_others() {
        Python::initialize();
        let (dir, path) = temp_db("writer");
        let slot = Arc::new(WriterSlot::new(
            Conn::open_writer(&path).unwrap(),
            Arc::new(Registry::default()),
        ));
        Python::attach(|py| {
            let held = slot.acquire(py).unwrap();
            // Same thread again: a clear error, not a deadlock.
            let err = slot.acquire(py).err().unwrap();
            assert!(
                err.to_string().contains("already holds the writer"),
                "{err}"
            );
            // Another thread waits (GIL released) until the slot is free.
            let s2 = slot.clone();
            let waiter = std::thread::spawn(move || {
                Python::attach(|py| {
                    let c = s2.acquire(py).unwrap();
                    s2.release(c);
                })
            });
            py.detach(|| std::thread::sleep(std::time::Duration::from_millis(50)));
            assert!(!waiter.is_finished());
            slot.release(held);
            py.detach(|| waiter.join().unwrap());
            // After close: acquire fails, release drops the connection.
            slot.close();
            assert!(slot.acquire(py).is_err());
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reader_pool_opens_lazily_up_to_max_and_reuses() {
        Python::initialize();
        let (dir, path) = temp_db("readers");
        let w = Conn::open_writer(&path).unwrap();
        let pool = ReaderPool::new(path.clone(), 2, Arc::new(Registry::default()));
        Python::attach(|py| {
            assert_eq!(pool.open_count(), 0);
            let a = pool.acquire(py).unwrap();
            let b = pool.acquire(py).unwrap();
            assert_eq!(pool.open_count(), 2);
            // Both held by this thread: a third would wait forever.
            let err = pool.acquire(py).err().unwrap();
            assert!(err.to_string().contains("held by this thread"), "{err}");
            pool.release(a);
            let c = pool.acquire(py).unwrap();
            assert_eq!(pool.open_count(), 2, "an idle reader is reused");
            pool.release(b);
            pool.release(c);
            pool.close();
            assert_eq!(pool.open_count(), 0);
            assert!(pool.acquire(py).is_err());
        });
        drop(w);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
