//! One update watcher for the whole process: a single poll thread sees
//! commits (from any process) on every watched database file and wakes
//! their subscriptions. See docs/0012-one-watcher.md.
//!
//! * Each watched file has one connection of the watcher's own, opened
//!   through SQLite (never a descriptor of ours on the db, `-wal` or `-shm`
//!   file: closing it would drop this process's POSIX locks, see
//!   docs/0002). Its only use is SQLite's mapping of region 0 of the
//!   `-shm` file (`xShmMap`), shared with every other connection of this
//!   process on the file. Polling reads the 48-byte WAL-index header from
//!   that mapping: no syscall, no lock. Every commit, checkpoint and WAL
//!   reset from any process changes the header; any change is a wake
//!   (spurious wakes are harmless, ticks coalesce). Without WAL (no
//!   mapping), `PRAGMA data_version` on that connection is polled instead.
//! * The thread polls a file only while it has subscriptions, every
//!   `interval` (the engine's `watcher_poll_interval_ms`, 1 ms by default);
//!   with no subscription anywhere it sleeps until one arrives.
//! * Every two seconds per file, `stat()` of the path (no descriptor)
//!   checks that the file is still the one opened: a deleted or replaced
//!   file ends every subscription once with an error naming the path, and
//!   the file is no longer polled (nothing is printed).
//! * The watcher's connection is closed synchronously when the engine
//!   closes (`unwatch`), before the engine's own connections, so the last
//!   connection (the writer) still checkpoints and removes the WAL.

use alkdev_storage_core::registry::FileId;
use alkdev_storage_core::walindex::{read_header, Header};
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often each watched file's path is checked with `stat()`.
const STAT_EVERY: Duration = Duration::from_secs(2);
/// Longest sleep of the poll thread while files are watched.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// A file that changed less than this long ago is polled every `interval`;
/// after that, every `interval * IDLE_FACTOR` (adaptive polling: an idle
/// file costs a third of the wake-ups; the first commit after a quiet second
/// waits at most one idle interval).
const ACTIVE_FOR: Duration = Duration::from_secs(1);
const IDLE_FACTOR: u32 = 3;

/// Why a subscription ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// `close()` on the subscription.
    Closed,
    /// The engine closed (the watcher of the file stopped).
    Stopped,
    /// The file was deleted or replaced (the message names the path).
    Failed(String),
}

#[derive(Default)]
struct SubState {
    pending: bool,
    end: Option<End>,
}

/// One subscription: a coalescing tick flag and a condition variable,
/// optionally forwarded to a [`Sink`] (one thread waiting on many).
#[derive(Default)]
pub struct Sub {
    st: Mutex<SubState>,
    cv: Condvar,
    sink: Mutex<Option<(Arc<Sink>, u64)>>,
}

#[derive(Default)]
struct SinkState {
    ready: Vec<u64>,
    closed: bool,
}

/// Keys of subscriptions that got a tick or ended, for one thread that
/// waits on many subscriptions (the asyncio bridge of the process).
#[derive(Default)]
pub struct Sink {
    st: Mutex<SinkState>,
    cv: Condvar,
}

impl Sink {
    fn push(&self, key: u64) {
        let mut st = self.st.lock();
        st.ready.push(key);
        self.cv.notify_all();
    }

    /// Wait up to `timeout` for keys: Some(keys) (empty on timeout),
    /// None once closed.
    pub fn wait(&self, timeout: Duration) -> Option<Vec<u64>> {
        let deadline = Instant::now() + timeout;
        let mut st = self.st.lock();
        while st.ready.is_empty() && !st.closed {
            if self.cv.wait_until(&mut st, deadline).timed_out() {
                break;
            }
        }
        if st.closed {
            return None;
        }
        Some(std::mem::take(&mut st.ready))
    }

    pub fn close(&self) {
        self.st.lock().closed = true;
        self.cv.notify_all();
    }
}

impl Sub {
    /// Wait up to `timeout` for a tick: Ok(true) on a tick (consumed),
    /// Ok(false) on timeout, Err once the subscription ended.
    pub fn wait(&self, timeout: Duration) -> Result<bool, End> {
        let deadline = Instant::now() + timeout;
        let mut st = self.st.lock();
        loop {
            if let Some(e) = &st.end {
                return Err(e.clone());
            }
            if st.pending {
                st.pending = false;
                return Ok(true);
            }
            if self.cv.wait_until(&mut st, deadline).timed_out() {
                if st.pending && st.end.is_none() {
                    st.pending = false;
                    return Ok(true);
                }
                return st.end.clone().map_or(Ok(false), Err);
            }
        }
    }

    fn fire(&self) {
        let mut st = self.st.lock();
        if !st.pending {
            st.pending = true;
            self.cv.notify_all();
            drop(st);
            self.forward();
        }
    }

    /// End the subscription (the first reason wins); wakes its waiter.
    pub fn end(&self, why: End) {
        let mut st = self.st.lock();
        let first = st.end.is_none();
        if first {
            st.end = Some(why);
        }
        self.cv.notify_all();
        drop(st);
        if first {
            self.forward();
        }
    }

    fn forward(&self) {
        if let Some((sink, key)) = self.sink.lock().as_ref() {
            sink.push(*key);
        }
    }

    /// Also report ticks and the end to `sink` under `key` (replacing any
    /// previous sink). A tick pending or an end already there is reported
    /// at once. The sink's reader consumes a tick with `wait(0)`.
    pub fn forward_to(&self, sink: Arc<Sink>, key: u64) {
        *self.sink.lock() = Some((sink, key));
        let st = self.st.lock();
        let now = st.pending || st.end.is_some();
        drop(st);
        if now {
            self.forward();
        }
    }

    pub fn ended(&self) -> bool {
        self.st.lock().end.is_some()
    }
}

/// The watch of one database file (one per engine, created on its first
/// subscription).
pub struct FileWatch {
    path: String,
    subs: Mutex<Vec<Arc<Sub>>>,
    nsubs: AtomicUsize,
    /// Set once the file was found deleted or replaced, or the engine closed.
    end: Mutex<Option<End>>,
}

impl FileWatch {
    /// A new subscription; Err when the watch has ended.
    pub fn subscribe(&self) -> Result<Arc<Sub>, End> {
        let sub = Arc::new(Sub::default());
        {
            let end = self.end.lock();
            if let Some(e) = end.as_ref() {
                return Err(e.clone());
            }
            self.subs.lock().push(sub.clone());
        }
        if self.nsubs.fetch_add(1, Ordering::AcqRel) == 0 {
            // Wake the poll thread, which skips files without
            // subscriptions, under its lock so the notice is not lost.
            let _g = HUB.st.lock();
            HUB.cv.notify_all();
        }
        Ok(sub)
    }

    /// Forget `sub` (idempotent) and end it as closed.
    pub fn unsubscribe(&self, sub: &Arc<Sub>) {
        sub.end(End::Closed);
        let mut subs = self.subs.lock();
        if let Some(i) = subs.iter().position(|s| Arc::ptr_eq(s, sub)) {
            subs.swap_remove(i);
            self.nsubs.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn fire(&self) {
        for s in self.subs.lock().iter() {
            s.fire();
        }
    }

    fn finish(&self, why: End) {
        let mut end = self.end.lock();
        if end.is_none() {
            *end = Some(why.clone());
        }
        let subs = std::mem::take(&mut *self.subs.lock());
        self.nsubs.store(0, Ordering::Release);
        drop(end);
        for s in subs {
            s.end(why.clone());
        }
    }
}

/// Pointer into SQLite's mapping of the `-shm` file, valid while the
/// entry's connection is open (both live in the hub, under its lock).
struct ShmPtr(*const u32);
// SAFETY: only read (volatile) by the poll thread under the hub lock,
// while the connection that owns the mapping is open.
unsafe impl Send for ShmPtr {}

enum Source {
    Shm(ShmPtr, Header),
    DataVersion(i64),
}

struct Entry {
    file: Arc<FileWatch>,
    conn: rusqlite::Connection,
    source: Source,
    interval: Duration,
    next_due: Instant,
    /// Polled every `interval` until then, else every idle interval.
    active_until: Instant,
    /// (path to stat, identity at open), when the path is a plain file.
    identity: Option<(String, FileId)>,
    next_stat: Instant,
}

impl Entry {
    /// Poll once; true when the file changed.
    fn changed(&mut self) -> bool {
        match &mut self.source {
            Source::Shm(p, last) => {
                // Word by word, inlined (a fence per sweep, in `run`):
                // this runs for every watched file every millisecond.
                let mut diff = 0u32;
                for (i, w) in last.iter_mut().enumerate() {
                    // SAFETY: the mapping lives while `self.conn` is open.
                    let now = unsafe { std::ptr::read_volatile(p.0.add(i)) };
                    diff |= now ^ *w;
                    *w = now;
                }
                diff != 0
            }
            Source::DataVersion(last) => {
                match self
                    .conn
                    .query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))
                {
                    Ok(v) if v != *last => {
                        *last = v;
                        true
                    }
                    _ => false,
                }
            }
        }
    }

    /// The error when the path no longer names the file that was opened.
    fn gone(&self) -> Option<String> {
        let (stat_path, id) = self.identity.as_ref()?;
        match std::fs::metadata(stat_path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!(
                "the database file {:?} was deleted while it was watched for updates; \
                 reopen it",
                self.file.path
            )),
            Ok(m) => {
                use std::os::unix::fs::MetadataExt;
                ((m.dev(), m.ino()) != *id).then(|| {
                    format!(
                        "the database file {:?} was replaced by another file while it was \
                         watched for updates; reopen it",
                        self.file.path
                    )
                })
            }
            Err(_) => None,
        }
    }
}

struct HubState {
    entries: Vec<Entry>,
    thread: bool,
    /// The process the poll thread runs in: a child made by fork() has
    /// the parent's state but not its thread.
    pid: u32,
}

struct Hub {
    st: Mutex<HubState>,
    cv: Condvar,
}

static HUB: Hub = Hub {
    st: Mutex::new(HubState {
        entries: Vec::new(),
        thread: false,
        pid: 0,
    }),
    cv: Condvar::new(),
};

/// Open the watcher's connection on `path` and its source of change.
fn open_source(path: &str) -> Result<(rusqlite::Connection, Source), String> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot watch {path:?} for updates: {e}"))?;
    let _ = conn.busy_timeout(Duration::from_secs(5));
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(|e| format!("cannot watch {path:?} for updates: {e}"))?;
    if mode.eq_ignore_ascii_case("wal")
        && conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            })
            .is_ok()
    {
        // SAFETY: open, in WAL mode, has read the database.
        if let Some(p) = unsafe { crate::conn::map_region0(conn.handle()) } {
            let h = unsafe { read_header(p) };
            return Ok((conn, Source::Shm(ShmPtr(p), h)));
        }
    }
    let v = conn
        .query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))
        .map_err(|e| format!("cannot watch {path:?} for updates: {e}"))?;
    Ok((conn, Source::DataVersion(v)))
}

/// Start watching a file (no GIL needed; opens a connection). `open_path`
/// is what SQLite opens, `path` the name errors show, `identity` the path
/// to `stat()` and the (device, inode) the engine opened.
pub fn watch(
    open_path: &str,
    path: &str,
    identity: Option<(String, FileId)>,
    interval: Duration,
) -> Result<Arc<FileWatch>, String> {
    let (conn, source) = open_source(open_path)?;
    let file = Arc::new(FileWatch {
        path: path.to_string(),
        subs: Mutex::new(Vec::new()),
        nsubs: AtomicUsize::new(0),
        end: Mutex::new(None),
    });
    let now = Instant::now();
    let mut st = HUB.st.lock();
    if st.thread && st.pid != std::process::id() {
        // After fork(): the parent's watches are not ours (their
        // connections belong to the parent: leak them, never close them
        // here) and the poll thread is gone.
        std::mem::forget(std::mem::take(&mut st.entries));
        st.thread = false;
    }
    // Spread the stat() checks over the period.
    let spread = STAT_EVERY.mul_f64((st.entries.len() % 97) as f64 / 97.0);
    st.entries.push(Entry {
        file: file.clone(),
        conn,
        source,
        interval,
        next_due: now,
        active_until: now + ACTIVE_FOR,
        identity,
        next_stat: now + spread,
    });
    if !st.thread {
        std::thread::Builder::new()
            .name("alkdev-storage-watcher".into())
            .spawn(run)
            .map_err(|e| format!("cannot start the update watcher thread: {e}"))?;
        st.thread = true;
        st.pid = std::process::id();
    }
    HUB.cv.notify_all();
    Ok(file)
}

/// Stop watching (the engine closed): every subscription ends, and the
/// watcher's connection is closed before this returns.
pub fn unwatch(file: &Arc<FileWatch>) {
    let entry = {
        let mut st = HUB.st.lock();
        st.entries
            .iter()
            .position(|e| Arc::ptr_eq(&e.file, file))
            .map(|i| st.entries.swap_remove(i))
    };
    file.finish(End::Stopped);
    drop(entry);
}

/// The poll thread.
fn run() {
    let mut st = HUB.st.lock();
    loop {
        let now = Instant::now();
        let mut next = now + MAX_SLEEP;
        let mut any = false;
        let mut failed: Vec<usize> = Vec::new();
        // Order the header reads below after the previous sweep's.
        std::sync::atomic::fence(Ordering::SeqCst);
        for (i, e) in st.entries.iter_mut().enumerate() {
            if e.file.nsubs.load(Ordering::Acquire) == 0 {
                continue;
            }
            any = true;
            if now >= e.next_stat {
                e.next_stat = now + STAT_EVERY;
                if let Some(msg) = e.gone() {
                    e.file.finish(End::Failed(msg));
                    failed.push(i);
                    continue;
                }
            }
            if now >= e.next_due {
                if e.changed() {
                    e.file.fire();
                    e.active_until = now + ACTIVE_FOR;
                }
                e.next_due = if now < e.active_until {
                    now + e.interval
                } else {
                    now + e.interval * IDLE_FACTOR
                };
            }
            next = next.min(e.next_due).min(e.next_stat);
        }
        if !failed.is_empty() {
            let mut gone = Vec::with_capacity(failed.len());
            for i in failed.into_iter().rev() {
                gone.push(st.entries.swap_remove(i));
            }
            // Close their connections without holding the lock.
            drop(st);
            drop(gone);
            st = HUB.st.lock();
            continue;
        }
        if any {
            HUB.cv.wait_until(&mut st, next);
        } else {
            HUB.cv.wait(&mut st);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_coalesce_and_an_end_wins() {
        let sub = Sub::default();
        assert_eq!(sub.wait(Duration::ZERO), Ok(false));
        sub.fire();
        sub.fire();
        assert_eq!(sub.wait(Duration::ZERO), Ok(true), "one tick for two fires");
        assert_eq!(sub.wait(Duration::from_millis(5)), Ok(false));
        sub.fire();
        sub.end(End::Failed("gone".into()));
        sub.end(End::Closed);
        assert_eq!(sub.wait(Duration::ZERO), Err(End::Failed("gone".into())));
        assert!(sub.ended());
    }

    #[test]
    fn a_waiter_wakes_on_a_tick_from_another_thread() {
        let sub = Arc::new(Sub::default());
        let s2 = sub.clone();
        let t = std::thread::spawn(move || s2.wait(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        sub.fire();
        assert_eq!(t.join().unwrap(), Ok(true));
    }

    #[test]
    fn the_sink_gets_ticks_pending_ticks_and_ends() {
        let sink = Arc::new(Sink::default());
        let a = Sub::default();
        let b = Sub::default();
        b.fire(); // pending before forwarding: reported at once
        a.forward_to(sink.clone(), 1);
        b.forward_to(sink.clone(), 2);
        assert_eq!(sink.wait(Duration::ZERO), Some(vec![2]));
        a.fire();
        a.fire(); // coalesced until consumed
        assert_eq!(sink.wait(Duration::ZERO), Some(vec![1]));
        assert_eq!(a.wait(Duration::ZERO), Ok(true));
        a.end(End::Stopped);
        assert_eq!(sink.wait(Duration::ZERO), Some(vec![1]));
        assert_eq!(sink.wait(Duration::from_millis(5)), Some(vec![]));
        sink.close();
        assert_eq!(sink.wait(Duration::from_secs(5)), None);
    }

    #[test]
    fn a_file_watch_refuses_subscriptions_once_ended() {
        let fw = FileWatch {
            path: "x.db".into(),
            subs: Mutex::new(Vec::new()),
            nsubs: AtomicUsize::new(0),
            end: Mutex::new(None),
        };
        let s = fw.subscribe().unwrap();
        assert_eq!(fw.nsubs.load(Ordering::Acquire), 1);
        fw.fire();
        assert_eq!(s.wait(Duration::ZERO), Ok(true));
        fw.finish(End::Failed("x.db was deleted".into()));
        assert_eq!(
            s.wait(Duration::ZERO),
            Err(End::Failed("x.db was deleted".into()))
        );
        assert_eq!(fw.nsubs.load(Ordering::Acquire), 0);
        assert!(matches!(fw.subscribe(), Err(End::Failed(_))));
        fw.unsubscribe(&s); // idempotent after the end
        assert_eq!(fw.nsubs.load(Ordering::Acquire), 0);
    }
}
