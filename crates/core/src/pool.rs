//! The single writer slot and the bounded, lazily opened reader pool.
//!
//! They follow honker-core's `Writer` / `Readers` (a condvar-guarded slot;
//! a pool that opens connections on demand up to `max`, then waits) but
//! are generic over the connection type `C` (the native crate's `Conn`,
//! a connection with its prepared statement handles) and over how a
//! thread waits ([`Waiter`]: the native crate releases the GIL while it
//! waits and checks for Ctrl-C between slices of the wait). See
//! docs/0001-own-connection-slots.md and docs/0008-waits.md.

use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

thread_local! {
    static THREAD_TAG: u8 = const { 0 };
}

/// A process-unique, non-zero id for the calling thread.
#[inline]
pub fn thread_tag() -> usize {
    THREAD_TAG.with(|t| t as *const u8 as usize)
}

/// How long one uninterrupted slice of a wait lasts: between slices the
/// waiter checks for signals (Ctrl-C) and the deadline.
pub const WAIT_SLICE: Duration = Duration::from_millis(50);

/// How a thread waits for a connection.
pub trait Waiter {
    /// What [`Waiter::check`] reports (e.g. a pending KeyboardInterrupt).
    type Error;
    /// Run `f`, which blocks for at most one [`WAIT_SLICE`] (the native
    /// crate runs it with the GIL released).
    fn block<R: Send, F: FnOnce() -> R + Send>(&self, f: F) -> R;
    /// Called between slices of a wait; an error ends the wait.
    fn check(&self) -> Result<(), Self::Error>;
    /// An id of the calling thread recorded by the writer slot while the
    /// thread holds it, so a timeout can name the holder.
    fn ident(&self) -> u64 {
        0
    }
}

/// A waiter that just blocks (no interpreter to check).
pub struct Plain;

impl Waiter for Plain {
    type Error = std::convert::Infallible;
    fn block<R: Send, F: FnOnce() -> R + Send>(&self, f: F) -> R {
        f()
    }
    fn check(&self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Why no connection was handed out. `W`: the waiter's error; `O`: the
/// error of opening a new reader.
#[derive(Debug, PartialEq, Eq)]
pub enum PoolError<W, O> {
    /// The slot or pool was closed.
    Closed,
    /// This thread already holds the writer (waiting would deadlock).
    SameThread,
    /// Every reader is held by this thread (waiting would deadlock).
    AllHeldByThisThread { max: usize },
    /// The wait ended at its deadline; `holder` is the [`Waiter::ident`] of
    /// the thread that held the writer (0 for the reader pool).
    TimedOut { holder: u64, waited: Duration },
    /// [`Waiter::check`] failed.
    Interrupted(W),
    /// Opening a new reader failed.
    Open(O),
}

/// Wait on `cv` until `deadline` or a notification; true when the slice
/// ended without one.
fn wait_slice<T>(cv: &Condvar, guard: &mut parking_lot::MutexGuard<'_, T>, end: Instant) -> bool {
    cv.wait_until(guard, end).timed_out()
}

/// End of the next slice and whether it is the last one.
fn slice_end(deadline: Option<Instant>) -> Instant {
    let end = Instant::now() + WAIT_SLICE;
    match deadline {
        Some(d) if d < end => d,
        _ => end,
    }
}

pub struct WriterSlot<C> {
    slot: Mutex<Option<C>>,
    available: Condvar,
    closed: AtomicBool,
    /// Thread that holds the writer (0 when free), to turn a same-thread
    /// re-acquire, a certain deadlock, into a clear error.
    owner: AtomicUsize,
    /// [`Waiter::ident`] of that thread.
    owner_ident: AtomicU64,
}

impl<C: Send> WriterSlot<C> {
    pub fn new(conn: C) -> Self {
        Self {
            slot: Mutex::new(Some(conn)),
            available: Condvar::new(),
            closed: AtomicBool::new(false),
            owner: AtomicUsize::new(0),
            owner_ident: AtomicU64::new(0),
        }
    }

    /// Take the writer. Uncontended: no call to the waiter at all.
    /// Contended: wait in slices through `w` until the writer is free,
    /// `timeout` passes or `w.check()` fails.
    #[inline]
    pub fn acquire<W: Waiter>(
        &self,
        w: &W,
        timeout: Option<Duration>,
    ) -> Result<C, PoolError<W::Error, std::convert::Infallible>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PoolError::Closed);
        }
        if let Some(c) = self.slot.lock().take() {
            self.owner.store(thread_tag(), Ordering::Relaxed);
            self.owner_ident.store(w.ident(), Ordering::Relaxed);
            return Ok(c);
        }
        self.acquire_slow(w, timeout)
    }

    /// Take the writer only if it is free now; never waits. `Ok(None)`
    /// when another thread holds it (or this one: no deadlock either).
    #[inline]
    pub fn try_acquire<W: Waiter>(
        &self,
        w: &W,
    ) -> Result<Option<C>, PoolError<W::Error, std::convert::Infallible>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PoolError::Closed);
        }
        match self.slot.try_lock().and_then(|mut g| g.take()) {
            Some(c) => {
                self.owner.store(thread_tag(), Ordering::Relaxed);
                self.owner_ident.store(w.ident(), Ordering::Relaxed);
                Ok(Some(c))
            }
            None => Ok(None),
        }
    }

    #[cold]
    fn acquire_slow<W: Waiter>(
        &self,
        w: &W,
        timeout: Option<Duration>,
    ) -> Result<C, PoolError<W::Error, std::convert::Infallible>> {
        let me = thread_tag();
        if self.owner.load(Ordering::Relaxed) == me {
            return Err(PoolError::SameThread);
        }
        let start = Instant::now();
        let deadline = timeout.map(|t| start + t);
        loop {
            let end = slice_end(deadline);
            let got = w.block(|| {
                let mut guard = self.slot.lock();
                loop {
                    if self.closed.load(Ordering::Acquire) {
                        return Err(());
                    }
                    if let Some(c) = guard.take() {
                        return Ok(Some(c));
                    }
                    if wait_slice(&self.available, &mut guard, end) {
                        return Ok(guard.take());
                    }
                }
            });
            match got {
                Ok(Some(c)) => {
                    self.owner.store(me, Ordering::Relaxed);
                    self.owner_ident.store(w.ident(), Ordering::Relaxed);
                    return Ok(c);
                }
                Err(()) => return Err(PoolError::Closed),
                Ok(None) => {}
            }
            w.check().map_err(PoolError::Interrupted)?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(PoolError::TimedOut {
                    holder: self.owner_ident.load(Ordering::Relaxed),
                    waited: start.elapsed(),
                });
            }
        }
    }

    /// Give the writer back. After close the connection is dropped instead.
    #[inline]
    pub fn release(&self, conn: C) {
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

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// What the reader pool needs from a connection.
pub trait PoolConn: Send + 'static {
    /// Thread tag of the thread that took it from the pool.
    fn holder(&self) -> usize;
    fn set_holder(&mut self, tag: usize);
    /// Janitor, on an idle connection: end an implicit read transaction
    /// that is older than `age`.
    fn end_stale_read(&mut self, age: Duration);
}

struct ReaderState<C> {
    idle: Vec<C>,
    open: usize,
    /// Thread tags of the readers currently taken (one entry each).
    holders: Vec<usize>,
}

/// One janitor thread for the whole process (whatever the number of
/// pools): every [`IDLE_SNAPSHOT`] it runs each registered pool's sweep.
/// It exits when no pool is registered and starts again with the next.
struct Janitors {
    pools: Vec<(u64, Box<dyn Fn() + Send>)>,
    running: bool,
    /// The process the thread runs in (a fork() child has no thread).
    pid: u32,
}

static JANITORS: Mutex<Janitors> = Mutex::new(Janitors {
    pools: Vec::new(),
    running: false,
    pid: 0,
});
static NEXT_POOL: AtomicU64 = AtomicU64::new(1);

fn janitor_register(sweep: Box<dyn Fn() + Send>) -> u64 {
    let id = NEXT_POOL.fetch_add(1, Ordering::Relaxed);
    let mut j = JANITORS.lock();
    j.pools.push((id, sweep));
    if j.running && j.pid != std::process::id() {
        j.running = false;
    }
    if !j.running {
        let spawned = std::thread::Builder::new()
            .name("alkdev-reader-janitor".into())
            .spawn(|| loop {
                std::thread::sleep(IDLE_SNAPSHOT);
                let mut j = JANITORS.lock();
                if j.pools.is_empty() {
                    j.running = false;
                    return;
                }
                for (_, sweep) in j.pools.iter() {
                    sweep();
                }
            });
        j.running = spawned.is_ok();
        j.pid = std::process::id();
    }
    id
}

fn janitor_unregister(id: u64) {
    let gone = {
        let mut j = JANITORS.lock();
        j.pools
            .iter()
            .position(|(i, _)| *i == id)
            .map(|i| j.pools.swap_remove(i))
    };
    drop(gone);
}

pub struct ReaderPool<C> {
    state: Arc<Mutex<ReaderState<C>>>,
    available: Condvar,
    closed: AtomicBool,
    max: usize,
    /// Registration with the process-wide janitor, once a reader opened.
    janitor: Mutex<Option<u64>>,
}

/// How long an idle reader may keep its implicit read transaction (and so
/// pin the WAL against checkpoints) before the janitor ends it.
pub const IDLE_SNAPSHOT: Duration = Duration::from_millis(100);

impl<C> Drop for ReaderPool<C> {
    fn drop(&mut self) {
        if let Some(id) = self.janitor.get_mut().take() {
            janitor_unregister(id);
        }
    }
}

fn remove_one(v: &mut Vec<usize>, tag: usize) {
    if let Some(i) = v.iter().position(|&h| h == tag) {
        v.swap_remove(i);
    }
}

impl<C: PoolConn> ReaderPool<C> {
    pub fn new(max: usize) -> Self {
        Self {
            state: Arc::new(Mutex::new(ReaderState {
                idle: Vec::new(),
                open: 0,
                holders: Vec::new(),
            })),
            available: Condvar::new(),
            closed: AtomicBool::new(false),
            max: max.max(1),
            janitor: Mutex::new(None),
        }
    }

    /// Register with the process-wide janitor (once): every 100 ms it
    /// ends the implicit read transactions of readers idle for longer than
    /// IDLE_SNAPSHOT, so an idle pool never holds old snapshots that stop
    /// checkpoints.
    fn ensure_janitor(&self) {
        let mut j = self.janitor.lock();
        if j.is_some() {
            return;
        }
        let state = self.state.clone();
        *j = Some(janitor_register(Box::new(move || {
            let mut st = state.lock();
            for c in st.idle.iter_mut() {
                c.end_stale_read(IDLE_SNAPSHOT);
            }
        })));
    }

    fn stop_janitor(&self) {
        if let Some(id) = self.janitor.lock().take() {
            janitor_unregister(id);
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Take a reader: an idle one, else a new one from `open` (while fewer
    /// than `max` are open), else wait like [`WriterSlot::acquire`].
    #[inline]
    pub fn acquire<W: Waiter, O: Send>(
        &self,
        w: &W,
        timeout: Option<Duration>,
        open: impl FnOnce() -> Result<C, O> + Send,
    ) -> Result<C, PoolError<W::Error, O>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PoolError::Closed);
        }
        let me = thread_tag();
        {
            let mut st = self.state.lock();
            if let Some(mut c) = st.idle.pop() {
                st.holders.push(me);
                drop(st);
                c.set_holder(me);
                return Ok(c);
            }
            if st.open >= self.max && st.holders.iter().filter(|&&h| h == me).count() >= self.max {
                return Err(PoolError::AllHeldByThisThread { max: self.max });
            }
        }
        self.acquire_slow(w, timeout, open)
    }

    #[cold]
    fn acquire_slow<W: Waiter, O: Send>(
        &self,
        w: &W,
        timeout: Option<Duration>,
        open: impl FnOnce() -> Result<C, O> + Send,
    ) -> Result<C, PoolError<W::Error, O>> {
        let me = thread_tag();
        let start = Instant::now();
        let deadline = timeout.map(|t| start + t);
        let mut open = Some(open);
        loop {
            let end = slice_end(deadline);
            let open_ref = &mut open;
            // Ok(Some): a connection; Ok(None): the slice ended.
            let got: Result<Option<C>, PoolError<(), O>> = w.block(|| {
                let mut st = self.state.lock();
                loop {
                    if self.closed.load(Ordering::Acquire) {
                        return Err(PoolError::Closed);
                    }
                    if let Some(c) = st.idle.pop() {
                        st.holders.push(me);
                        return Ok(Some(c));
                    }
                    if st.open < self.max {
                        st.open += 1;
                        st.holders.push(me);
                        drop(st);
                        let open = open_ref.take().expect("a reader is opened once");
                        return match open() {
                            Ok(c) => {
                                self.ensure_janitor();
                                Ok(Some(c))
                            }
                            Err(e) => {
                                let mut st = self.state.lock();
                                st.open -= 1;
                                remove_one(&mut st.holders, me);
                                drop(st);
                                self.available.notify_one();
                                Err(PoolError::Open(e))
                            }
                        };
                    }
                    if wait_slice(&self.available, &mut st, end) {
                        return Ok(st.idle.pop().inspect(|_| st.holders.push(me)));
                    }
                }
            });
            match got {
                Ok(Some(mut c)) => {
                    c.set_holder(me);
                    if self.closed.load(Ordering::Acquire) {
                        self.discard(c);
                        return Err(PoolError::Closed);
                    }
                    return Ok(c);
                }
                Ok(None) => {}
                Err(PoolError::Open(e)) => return Err(PoolError::Open(e)),
                Err(_) => return Err(PoolError::Closed),
            }
            w.check().map_err(PoolError::Interrupted)?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(PoolError::TimedOut {
                    holder: 0,
                    waited: start.elapsed(),
                });
            }
        }
    }

    #[inline]
    pub fn release(&self, conn: C) {
        if self.closed.load(Ordering::Acquire) {
            self.discard(conn);
            return;
        }
        let mut st = self.state.lock();
        remove_one(&mut st.holders, conn.holder());
        st.idle.push(conn);
        drop(st);
        self.available.notify_one();
    }

    /// Drop a connection for good (after close, or when it is unusable).
    pub fn discard(&self, conn: C) {
        let holder = conn.holder();
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
        let idle: Vec<C> = {
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
mod tests;
