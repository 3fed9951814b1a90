use super::*;
use std::sync::atomic::AtomicBool;

struct Fake {
    id: Option<FileId>,
    closed: AtomicBool,
    handles: AtomicUsize,
    opts: u32,
}

impl Shared for Fake {
    fn file_id(&self) -> Option<FileId> {
        self.id
    }
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
    fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }
    fn handles(&self) -> &AtomicUsize {
        &self.handles
    }
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("alk-reg-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// "Open" `key`: create the file and a Fake engine for it.
fn create(key: &str, opts: u32) -> impl FnOnce() -> Result<Fake, String> + '_ {
    move || {
        std::fs::write(key, b"").map_err(|e| e.to_string())?;
        Ok(Fake {
            id: file_id(Path::new(key)),
            closed: AtomicBool::new(false),
            handles: AtomicUsize::new(0),
            opts,
        })
    }
}

fn same_opts(want: u32) -> impl FnOnce(&Fake) -> Result<(), String> {
    move |e| {
        if e.opts == want {
            Ok(())
        } else {
            Err(format!("opts={} in force", e.opts))
        }
    }
}

#[test]
fn keys_resolve_the_directory_whether_or_not_the_file_exists() {
    let dir = temp_dir("key");
    let file = dir.join("a.db");
    let dotted = dir.join("sub").join("..").join("a.db");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let before = engine_key(dotted.to_str().unwrap());
    std::fs::write(&file, b"").unwrap();
    let after = engine_key(dotted.to_str().unwrap());
    assert_eq!(before, after);
    assert_eq!(after, engine_key(file.to_str().unwrap()));
    #[cfg(unix)]
    {
        let link = dir.join("link.db");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(engine_key(link.to_str().unwrap()), after);
    }
    assert_eq!(engine_key("file:x.db?mode=ro"), "file:x.db?mode=ro");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn one_engine_per_file_until_its_last_handle_closes() {
    let dir = temp_dir("share");
    let key = engine_key(dir.join("a.db").to_str().unwrap());
    let reg: Registry<Fake> = Registry::new();
    let (a, new_a) = reg.open(&key, same_opts(1), create(&key, 1)).unwrap();
    let (b, new_b) = reg.open(&key, same_opts(1), create(&key, 1)).unwrap();
    assert!(new_a && !new_b);
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(a.handles().load(Ordering::Relaxed), 2);
    // Other options than the ones in force: refused, no handle taken.
    let err = reg.open(&key, same_opts(2), create(&key, 2)).err().unwrap();
    assert_eq!(err, "opts=1 in force");
    assert_eq!(a.handles().load(Ordering::Relaxed), 2);
    assert!(!reg.release(&key, &a, true), "one handle left");
    assert!(!a.is_closed());
    assert!(reg.release(&key, &b, true), "the last handle closes it");
    assert!(a.is_closed());
    // A closed engine is never handed out again.
    let (c, new_c) = reg.open(&key, same_opts(2), create(&key, 2)).unwrap();
    assert!(new_c && !Arc::ptr_eq(&a, &c));
    drop((a, b));
    assert!(reg.release(&key, &c, true));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_replaced_file_gets_a_fresh_engine() {
    let dir = temp_dir("replace");
    let key = engine_key(dir.join("a.db").to_str().unwrap());
    let reg: Registry<Fake> = Registry::new();
    let (a, _) = reg.open(&key, same_opts(1), create(&key, 1)).unwrap();
    std::fs::remove_file(&key).unwrap();
    // Deleted: a new engine (which creates the file again).
    let (b, new_b) = reg.open(&key, same_opts(1), create(&key, 1)).unwrap();
    assert!(new_b && !Arc::ptr_eq(&a, &b));
    // The old engine's last handle closing does not forget the new one.
    assert!(reg.release(&key, &a, true));
    let (c, new_c) = reg.open(&key, same_opts(1), create(&key, 1)).unwrap();
    assert!(!new_c && Arc::ptr_eq(&b, &c));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_dropped_last_handle_leaves_the_engine_to_its_last_user() {
    let dir = temp_dir("drop");
    let key = engine_key(dir.join("a.db").to_str().unwrap());
    let reg: Registry<Fake> = Registry::new();
    let (a, _) = reg.open(&key, same_opts(1), create(&key, 1)).unwrap();
    assert!(!reg.release(&key, &a, false));
    assert!(!a.is_closed());
    // Still alive (a session holds it): reopening reuses it.
    let (b, new_b) = reg.open(&key, same_opts(1), create(&key, 1)).unwrap();
    assert!(!new_b && Arc::ptr_eq(&a, &b));
    assert!(!reg.release(&key, &b, false));
    drop((a, b));
    assert_eq!(reg.live(), 0);
    let (_c, new_c) = reg.open(&key, same_opts(1), create(&key, 1)).unwrap();
    assert!(new_c);
    std::fs::remove_dir_all(&dir).unwrap();
}
