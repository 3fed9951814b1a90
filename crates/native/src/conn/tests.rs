use super::*;

const T: std::time::Duration = std::time::Duration::from_secs(5);

#[test]
fn prepare_rejects_trailing_statements_and_empty_sql() {
    let dir = std::env::temp_dir().join(format!("alk-conn-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.db");
    let c = Conn::open_writer(path.to_str().unwrap(), T).unwrap();
    assert!(c.prepare_raw("SELECT 1; SELECT 2").is_err());
    assert!(c.prepare_raw("   ").is_err());
    let ok = c.prepare_raw("SELECT 1;  -- trailing comment").unwrap();
    unsafe { ffi::sqlite3_finalize(ok) };
    let bad = c.prepare_raw("SELEC 1").err().unwrap();
    assert!(bad.msg.contains("syntax error"), "{}", bad.msg);
    drop(c);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn temp_db(tag: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("alk-conn-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.db").to_str().unwrap().to_string();
    (dir, path)
}

fn count(c: &Conn) -> i64 {
    c.conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn reader_snapshot_is_reused_until_a_commit_then_refreshed() {
    let (dir, path) = temp_db("snap");
    let w = Conn::open_writer(&path, T).unwrap();
    w.conn.execute_batch("CREATE TABLE t(x)").unwrap();
    let mut r = Conn::open_reader(&path, T).unwrap();
    assert!(r.shm.is_some(), "the -shm header should be mapped");
    r.fresh_read();
    assert_eq!(count(&r), 0);
    assert!(r.has_open_read());
    // Nothing committed: the same read transaction is kept.
    r.fresh_read();
    assert!(r.has_open_read());
    // A commit by the writer, then by a foreign connection: each is seen
    // by the very next statement.
    w.conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
    r.fresh_read();
    assert_eq!(count(&r), 1);
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute("INSERT INTO t VALUES (2)", []).unwrap();
    r.fresh_read();
    assert_eq!(count(&r), 2);
    // Readers cannot write.
    assert!(r.conn.execute("INSERT INTO t VALUES (3)", []).is_err());
    r.end_read();
    assert!(!r.has_open_read() && r.autocommit());
    drop((r, w, other));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn statements_are_finalized_before_the_connection_closes() {
    let (dir, path) = temp_db("fin");
    let mut w = Conn::open_writer(&path, T).unwrap();
    w.conn.execute_batch("CREATE TABLE t(x)").unwrap();
    let (s1, _) = w.stmt_for_sql("SELECT x FROM t", true).unwrap();
    let (s2, _) = w.stmt_for_sql("SELECT x FROM t", true).unwrap();
    assert_eq!(s1, s2, "ad-hoc SQL is cached per connection");
    let handle = w.handle();
    assert!(!unsafe { ffi::sqlite3_next_stmt(handle, ptr::null_mut()) }.is_null());
    // Dropping must close cleanly (sqlite3_close fails with BUSY, and
    // leaks the file handle, if any statement is left unfinalized).
    drop(w);
    let fd_dir = std::path::Path::new("/proc/self/fd");
    if fd_dir.exists() {
        let open: Vec<_> = std::fs::read_dir(fd_dir)
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
            .filter(|p| p.to_string_lossy().contains(&path))
            .collect();
        assert!(open.is_empty(), "file still open: {open:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn busy_waits_end_at_the_timeout() {
    let (dir, path) = temp_db("busy");
    let a = Conn::open_writer(&path, T).unwrap();
    a.conn.execute_batch("CREATE TABLE t(x)").unwrap();
    let b = Conn::open_writer(&path, std::time::Duration::from_millis(200)).unwrap();
    a.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let t0 = std::time::Instant::now();
    let err = b.conn.execute("INSERT INTO t VALUES (1)", []).unwrap_err();
    let waited = t0.elapsed();
    assert_eq!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy),
        "{err}"
    );
    assert!(
        waited >= std::time::Duration::from_millis(200)
            && waited < std::time::Duration::from_secs(2),
        "{waited:?}"
    );
    // Released while b waits: b gets the lock.
    let waiter =
        std::thread::spawn(move || b.conn.execute("INSERT INTO t VALUES (1)", []).map(|_| ()));
    std::thread::sleep(std::time::Duration::from_millis(50));
    a.conn.execute_batch("COMMIT").unwrap();
    assert!(waiter.join().unwrap().is_ok());
    drop(a);
    std::fs::remove_dir_all(&dir).unwrap();
}
