use super::*;
use std::sync::atomic::AtomicU32;

/// A stand-in connection.
struct Fake {
    holder: usize,
    reads_ended: u32,
}

impl PoolConn for Fake {
    fn holder(&self) -> usize {
        self.holder
    }
    fn set_holder(&mut self, tag: usize) {
        self.holder = tag;
    }
    fn end_stale_read(&mut self, _age: Duration) {
        self.reads_ended += 1;
    }
}

fn fake() -> Fake {
    Fake {
        holder: 0,
        reads_ended: 0,
    }
}

/// A waiter with an id that fails its check after `checks` calls.
struct Counting {
    ident: u64,
    checks: AtomicU32,
    fail_after: u32,
}

impl Waiter for Counting {
    type Error = &'static str;
    fn block<R: Send, F: FnOnce() -> R + Send>(&self, f: F) -> R {
        f()
    }
    fn check(&self) -> Result<(), &'static str> {
        if self.checks.fetch_add(1, Ordering::Relaxed) + 1 >= self.fail_after {
            Err("interrupted")
        } else {
            Ok(())
        }
    }
    fn ident(&self) -> u64 {
        self.ident
    }
}

fn counting(ident: u64, fail_after: u32) -> Counting {
    Counting {
        ident,
        checks: AtomicU32::new(0),
        fail_after,
    }
}

#[test]
fn writer_slot_refuses_a_same_thread_reacquire_and_queues_others() {
    let slot = Arc::new(WriterSlot::new(fake()));
    let held = slot.acquire(&Plain, None).unwrap();
    // Same thread again: a clear error, not a deadlock.
    assert!(matches!(
        slot.acquire(&Plain, None),
        Err(PoolError::SameThread)
    ));
    // Another thread waits until the slot is free.
    let s2 = slot.clone();
    let waiter = std::thread::spawn(move || {
        let c = s2.acquire(&Plain, None).unwrap();
        s2.release(c);
    });
    std::thread::sleep(Duration::from_millis(120));
    assert!(!waiter.is_finished());
    slot.release(held);
    waiter.join().unwrap();
    // After close: acquire fails, release drops the connection.
    slot.close();
    assert!(matches!(slot.acquire(&Plain, None), Err(PoolError::Closed)));
}

#[test]
fn writer_wait_times_out_naming_the_holder() {
    let slot = Arc::new(WriterSlot::new(fake()));
    let held = slot.acquire(&counting(42, u32::MAX), None).unwrap();
    let s2 = slot.clone();
    let r = std::thread::spawn(move || {
        let t = Instant::now();
        let r = s2.acquire(&counting(7, u32::MAX), Some(Duration::from_millis(120)));
        (r.map(|_| ()), t.elapsed())
    })
    .join()
    .unwrap();
    match r {
        (Err(PoolError::TimedOut { holder, waited }), elapsed) => {
            assert_eq!(holder, 42);
            assert!(waited >= Duration::from_millis(120), "{waited:?}");
            assert!(elapsed < Duration::from_millis(1000), "{elapsed:?}");
        }
        other => panic!("expected a timeout, got {:?}", other.0.err()),
    }
    slot.release(held);
}

#[test]
fn writer_wait_stops_when_the_check_fails() {
    let slot = Arc::new(WriterSlot::new(fake()));
    let held = slot.acquire(&Plain, None).unwrap();
    let s2 = slot.clone();
    let t = Instant::now();
    let r = std::thread::spawn(move || s2.acquire(&counting(1, 2), None).map(|_| ()))
        .join()
        .unwrap();
    assert_eq!(r, Err(PoolError::Interrupted("interrupted")));
    // Two slices, then the failing check.
    assert!(t.elapsed() < Duration::from_millis(1000));
    slot.release(held);
}

#[test]
fn writer_wait_ends_when_the_slot_closes() {
    let slot = Arc::new(WriterSlot::new(fake()));
    let _held = slot.acquire(&Plain, None).unwrap();
    let s2 = slot.clone();
    let waiter = std::thread::spawn(move || s2.acquire(&Plain, None).map(|_| ()));
    std::thread::sleep(Duration::from_millis(20));
    slot.close();
    assert_eq!(waiter.join().unwrap(), Err(PoolError::Closed));
}

#[test]
fn reader_pool_opens_lazily_up_to_max_and_reuses() {
    let pool: ReaderPool<Fake> = ReaderPool::new(2);
    let opened = AtomicU32::new(0);
    let open = || -> Result<Fake, ()> {
        opened.fetch_add(1, Ordering::Relaxed);
        Ok(fake())
    };
    assert_eq!(pool.open_count(), 0);
    let a = pool.acquire(&Plain, None, open).unwrap();
    let b = pool.acquire(&Plain, None, open).unwrap();
    assert_eq!(pool.open_count(), 2);
    assert_eq!(a.holder(), thread_tag());
    // Both held by this thread: a third would wait forever.
    assert!(matches!(
        pool.acquire(&Plain, None, open),
        Err(PoolError::AllHeldByThisThread { max: 2 })
    ));
    pool.release(a);
    let c = pool.acquire(&Plain, None, open).unwrap();
    assert_eq!(pool.open_count(), 2, "an idle reader is reused");
    assert_eq!(opened.load(Ordering::Relaxed), 2);
    pool.release(b);
    pool.release(c);
    // The janitor visits idle readers.
    std::thread::sleep(IDLE_SNAPSHOT * 3);
    let d = pool.acquire(&Plain, None, open).unwrap();
    assert!(d.reads_ended >= 1);
    pool.release(d);
    pool.close();
    assert_eq!(pool.open_count(), 0);
    assert!(matches!(
        pool.acquire(&Plain, None, open),
        Err(PoolError::Closed)
    ));
}

#[test]
fn reader_pool_waits_for_another_thread_and_reports_open_errors() {
    let pool: Arc<ReaderPool<Fake>> = Arc::new(ReaderPool::new(1));
    let held = pool.acquire(&Plain, None, || Ok::<_, ()>(fake())).unwrap();
    let p2 = pool.clone();
    let waiter = std::thread::spawn(move || {
        p2.acquire(&Plain, Some(Duration::from_secs(5)), || Ok::<_, ()>(fake()))
            .map(|_| ())
    });
    std::thread::sleep(Duration::from_millis(80));
    assert!(!waiter.is_finished());
    pool.release(held);
    assert_eq!(waiter.join().unwrap(), Ok(()));
    // A failed open gives its slot back.
    let empty: ReaderPool<Fake> = ReaderPool::new(1);
    assert_eq!(
        empty
            .acquire(&Plain, None, || Err::<Fake, _>("cannot open"))
            .map(|_| ()),
        Err(PoolError::Open("cannot open"))
    );
    assert_eq!(empty.open_count(), 0);
}
