//! One engine per database file per process: a registry of weak
//! references keyed by the resolved path of the file.
//!
//! A key is the canonical directory plus the file name (the file may not
//! exist yet); `file:` URIs are their own key. An engine remembers the
//! identity of its file (device and inode) when it was created: a file
//! deleted and created again under the same name is another file, and gets
//! a fresh engine. The registry counts the handles of each engine; the
//! caller closes an engine when its last handle is closed.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

/// Device and inode of a file.
pub type FileId = (u64, u64);

/// The identity of the file at `path`, None when it does not exist (or
/// the platform has no inodes).
pub fn file_id(path: &Path) -> Option<FileId> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// The registry key of a database path: `file:` URIs as given, else the
/// absolute path with its directory canonicalised (symbolic links, `..`)
/// and, when the file exists, the file itself resolved too.
pub fn engine_key(path: &str) -> String {
    if path.starts_with("file:") {
        return path.to_string();
    }
    let p = Path::new(path);
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    if let Ok(c) = abs.canonicalize() {
        return c.to_string_lossy().into_owned();
    }
    match (abs.parent(), abs.file_name()) {
        (Some(dir), Some(name)) => match dir.canonicalize() {
            Ok(d) => d.join(name).to_string_lossy().into_owned(),
            Err(_) => abs.to_string_lossy().into_owned(),
        },
        _ => abs.to_string_lossy().into_owned(),
    }
}

/// What the registry needs from an engine.
pub trait Shared: Send + Sync {
    /// The identity of its file when it was created (None for URIs).
    fn file_id(&self) -> Option<FileId>;
    /// Closed engines are never handed out again.
    fn is_closed(&self) -> bool;
    /// Mark closed (under the registry lock, so no open can take it).
    fn mark_closed(&self);
    /// The number of open handles (maintained by the registry).
    fn handles(&self) -> &AtomicUsize;
}

pub struct Registry<T> {
    map: Mutex<Option<HashMap<String, Weak<T>>>>,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Registry<T> {
    pub const fn new() -> Self {
        Registry {
            map: Mutex::new(None),
        }
    }
}

impl<T: Shared> Registry<T> {
    /// A new handle on the engine of `key`: the live one (after `check`
    /// accepted it, e.g. that the options asked for match the ones in
    /// force), else a new one from `create`. Returns the engine and whether
    /// it was created. `create` runs with the registry locked, so two
    /// threads opening one file make one engine.
    pub fn open<E>(
        &self,
        key: &str,
        check: impl FnOnce(&T) -> Result<(), E>,
        create: impl FnOnce() -> Result<T, E>,
    ) -> Result<(Arc<T>, bool), E> {
        let mut guard = self.map.lock();
        let map = guard.get_or_insert_with(HashMap::new);
        if let Some(e) = map.get(key).and_then(Weak::upgrade) {
            if !e.is_closed() && e.file_id() == file_id(Path::new(key)) {
                check(&e)?;
                e.handles().fetch_add(1, Ordering::AcqRel);
                return Ok((e, false));
            }
        }
        let e = Arc::new(create()?);
        e.handles().fetch_add(1, Ordering::AcqRel);
        map.retain(|_, w| w.strong_count() > 0);
        map.insert(key.to_string(), Arc::downgrade(&e));
        Ok((e, true))
    }

    /// One handle of `engine` closed (`close`) or was dropped. Returns true
    /// when it was the last handle and `close` was asked: the engine is then
    /// marked closed and forgotten, and the caller closes its connections.
    /// (A dropped last handle leaves the engine to close when nothing uses
    /// it any more: open sessions and statements keep it alive.)
    pub fn release(&self, key: &str, engine: &Arc<T>, close: bool) -> bool {
        let mut guard = self.map.lock();
        let left = engine.handles().fetch_sub(1, Ordering::AcqRel) - 1;
        if left > 0 || !close {
            return false;
        }
        engine.mark_closed();
        if let Some(map) = guard.as_mut() {
            if map
                .get(key)
                .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(engine)))
            {
                map.remove(key);
            }
        }
        true
    }

    /// Engines currently registered and alive (for tests).
    pub fn live(&self) -> usize {
        self.map
            .lock()
            .as_ref()
            .map_or(0, |m| m.values().filter(|w| w.strong_count() > 0).count())
    }
}

#[cfg(test)]
mod tests;
