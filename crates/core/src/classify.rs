//! Statement classification: where a statement runs, decided once, from
//! what SQLite itself reports while compiling it (no SQL keyword parsing).
//!
//! While our own `sqlite3_prepare` runs, an authorizer (see `authorize.rs`)
//! feeds every action SQLite checks into [`Events`]; afterwards
//! [`classify`] combines them with `sqlite3_stmt_readonly` into a
//! [`Classification`]. This module is pure (no SQLite, no Python) so
//! `cargo test` exercises every rule; the two facts only a compiled
//! statement can answer come through [`Probe`].
//!
//! See docs/0007-statement-classification.md.

/// SQLite authorizer action codes (part of SQLite's stable C API; the FFI
/// glue checks them against the bindings in a test).
pub mod action {
    pub const CREATE_INDEX: i32 = 1;
    pub const CREATE_TABLE: i32 = 2;
    pub const CREATE_TEMP_INDEX: i32 = 3;
    pub const CREATE_TEMP_TABLE: i32 = 4;
    pub const CREATE_TEMP_TRIGGER: i32 = 5;
    pub const CREATE_TEMP_VIEW: i32 = 6;
    pub const CREATE_TRIGGER: i32 = 7;
    pub const CREATE_VIEW: i32 = 8;
    pub const DELETE: i32 = 9;
    pub const DROP_INDEX: i32 = 10;
    pub const DROP_TABLE: i32 = 11;
    pub const DROP_TEMP_INDEX: i32 = 12;
    pub const DROP_TEMP_TABLE: i32 = 13;
    pub const DROP_TEMP_TRIGGER: i32 = 14;
    pub const DROP_TEMP_VIEW: i32 = 15;
    pub const DROP_TRIGGER: i32 = 16;
    pub const DROP_VIEW: i32 = 17;
    pub const INSERT: i32 = 18;
    pub const PRAGMA: i32 = 19;
    pub const READ: i32 = 20;
    pub const SELECT: i32 = 21;
    pub const TRANSACTION: i32 = 22;
    pub const UPDATE: i32 = 23;
    pub const ATTACH: i32 = 24;
    pub const DETACH: i32 = 25;
    pub const ALTER_TABLE: i32 = 26;
    pub const REINDEX: i32 = 27;
    pub const ANALYZE: i32 = 28;
    pub const CREATE_VTABLE: i32 = 29;
    pub const DROP_VTABLE: i32 = 30;
    pub const FUNCTION: i32 = 31;
    pub const SAVEPOINT: i32 = 32;
    pub const RECURSIVE: i32 = 33;
}

/// honker's SQL functions that write, with their arities. The one list:
/// classification sends statements calling them to the writer, and readers
/// replace them with functions that fail (a safety net).
pub const WRITING_FUNCTIONS: &[(&str, i32)] = &[
    ("notify", 2),
    ("honker_bootstrap", 0),
    ("honker_claim_batch", 4),
    ("honker_ack_batch", 2),
    ("honker_sweep_expired", 1),
    ("honker_lock_acquire", 3),
    ("honker_lock_release", 2),
    ("honker_lock_renew", 3),
    ("honker_rate_limit_try", 3),
    ("honker_rate_limit_sweep", 1),
    ("honker_scheduler_register", 6),
    ("honker_scheduler_register", 7),
    ("honker_scheduler_unregister", 1),
    ("honker_scheduler_tick", 1),
    ("honker_scheduler_pause", 1),
    ("honker_scheduler_resume", 1),
    ("honker_scheduler_update", 6),
    ("honker_scheduler_update", 8),
    ("honker_result_save", 3),
    ("honker_result_sweep", 0),
    ("honker_enqueue", 7),
    ("honker_ack", 2),
    ("honker_retry", 4),
    ("honker_fail", 3),
    ("honker_heartbeat", 3),
    ("honker_cancel", 1),
    ("honker_stream_publish", 3),
    ("honker_stream_save_offset", 3),
];

/// True when `name` (as SQLite reports it) is one of [`WRITING_FUNCTIONS`].
pub fn is_writing_function(name: &str) -> bool {
    WRITING_FUNCTIONS
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(name))
}

/// Where a statement belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Reads only: runs on a reader.
    Read,
    /// Modifies the database (DML, DDL): the writer, in autocommit.
    Write,
    /// Read-only SQL calling a function that writes (`SELECT notify(...)`):
    /// the writer, inside BEGIN IMMEDIATE.
    ReadWrites,
    /// BEGIN/COMMIT/END/ROLLBACK [TO]/SAVEPOINT/RELEASE: never executed
    /// through the native statement methods.
    Transaction,
    /// ATTACH, DETACH, VACUUM, a PRAGMA that sets something: the writer,
    /// outside any transaction.
    Connection,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::ReadWrites => "read_writes",
            Kind::Transaction => "transaction",
            Kind::Connection => "connection",
        }
    }
}

/// The action of a transaction-control statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Begin,
    Commit,
    Rollback,
    Savepoint,
    Release,
    RollbackTo,
}

impl Control {
    pub fn as_str(self) -> &'static str {
        match self {
            Control::Begin => "begin",
            Control::Commit => "commit",
            Control::Rollback => "rollback",
            Control::Savepoint => "savepoint",
            Control::Release => "release",
            Control::RollbackTo => "rollback_to",
        }
    }
}

/// The per-statement facts the hot path reads (`Copy`, a few bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    pub kind: Kind,
    /// CREATE/DROP/ALTER/REINDEX/ANALYZE (and virtual tables).
    pub is_ddl: bool,
    /// Creates, drops or names an object of the TEMP schema.
    pub uses_temp: bool,
    /// Names a schema other than `main` and `temp` (an attached database).
    pub uses_attached: bool,
    /// A PRAGMA that sets something (`PRAGMA x = v`, not a query such as
    /// `table_info(t)`): SQLite applies it while compiling, on the
    /// connection that compiles it, so it is never compiled on a reader.
    pub setting: bool,
}

impl Info {
    /// `readonly` as exposed on `Statement`: exactly the statements that
    /// run on a reader's kind.
    pub fn readonly(&self) -> bool {
        self.kind == Kind::Read
    }

    /// The objects exist only on the writer connection (TEMP objects and
    /// attached databases are per connection): a read must run there.
    pub fn writer_only(&self) -> bool {
        self.uses_temp || self.uses_attached
    }
}

/// Everything known about a statement once it is classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    pub info: Info,
    /// For kind `Transaction`: the action and the savepoint name as SQLite
    /// parsed it (dequoted); `None` otherwise.
    pub control: Option<(Control, Option<String>)>,
}

/// What the authorizer answers for one action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Compile the action to nothing. Used for a PRAGMA with a value,
    /// which SQLite applies while *compiling* it (`PRAGMA query_only = 0`
    /// would otherwise switch a reader's safety net off just by being
    /// prepared there): classification never changes a connection.
    Ignore,
}

/// A PRAGMA seen while compiling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pragma {
    /// Name, lower-cased.
    pub name: String,
    /// `PRAGMA x = v` or `PRAGMA x(v)` (SQLite reports both the same way).
    pub has_value: bool,
}

/// The actions SQLite reported while compiling one statement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Events {
    /// The statement is EXPLAIN or EXPLAIN QUERY PLAN (set by the caller
    /// from `sqlite3_stmt_isexplain`): it lists a program, never runs it.
    pub explain: bool,
    pub control: Option<(Control, Option<String>)>,
    pub pragma: Option<Pragma>,
    pub attach_detach: bool,
    pub ddl: bool,
    pub dml: bool,
    pub writing_function: bool,
    pub uses_temp: bool,
    pub uses_attached: bool,
}

impl Events {
    /// Record one authorizer call: `code` and its two arguments, the
    /// schema name and the innermost trigger or view.
    pub fn record(
        &mut self,
        code: i32,
        arg1: Option<&str>,
        arg2: Option<&str>,
        schema: Option<&str>,
        _trigger: Option<&str>,
    ) -> Verdict {
        use action::*;
        match schema {
            Some(s) if s.eq_ignore_ascii_case("temp") => self.uses_temp = true,
            Some(s) if !s.eq_ignore_ascii_case("main") => self.uses_attached = true,
            _ => {}
        }
        match code {
            CREATE_TEMP_INDEX | CREATE_TEMP_TABLE | CREATE_TEMP_TRIGGER | CREATE_TEMP_VIEW
            | DROP_TEMP_INDEX | DROP_TEMP_TABLE | DROP_TEMP_TRIGGER | DROP_TEMP_VIEW => {
                self.uses_temp = true;
                self.ddl = true;
            }
            CREATE_INDEX | CREATE_TABLE | CREATE_TRIGGER | CREATE_VIEW | DROP_INDEX
            | DROP_TABLE | DROP_TRIGGER | DROP_VIEW | ALTER_TABLE | REINDEX | ANALYZE
            | CREATE_VTABLE | DROP_VTABLE => self.ddl = true,
            INSERT | UPDATE | DELETE => self.dml = true,
            TRANSACTION => {
                let act = match arg1 {
                    Some(a) if a.eq_ignore_ascii_case("BEGIN") => Control::Begin,
                    Some(a) if a.eq_ignore_ascii_case("COMMIT") => Control::Commit,
                    _ => Control::Rollback,
                };
                self.control.get_or_insert((act, None));
            }
            SAVEPOINT => {
                let act = match arg1 {
                    Some(a) if a.eq_ignore_ascii_case("BEGIN") => Control::Savepoint,
                    Some(a) if a.eq_ignore_ascii_case("RELEASE") => Control::Release,
                    _ => Control::RollbackTo,
                };
                self.control
                    .get_or_insert((act, arg2.map(|s| s.to_string())));
            }
            ATTACH | DETACH => self.attach_detach = true,
            PRAGMA => {
                let has_value = arg2.is_some();
                if self.pragma.is_none() {
                    self.pragma = Some(Pragma {
                        name: arg1.unwrap_or("").to_ascii_lowercase(),
                        has_value,
                    });
                }
                if has_value {
                    return Verdict::Ignore;
                }
            }
            FUNCTION if arg2.is_some_and(is_writing_function) => self.writing_function = true,
            _ => {}
        }
        Verdict::Allow
    }
}

/// Facts only the compiled statement (or SQLite's pragma table) can give,
/// asked for only in the rare cases that need them.
pub trait Probe {
    /// The compiled program contains SQLite's Vacuum operation (VACUUM and
    /// VACUUM INTO report no authorizer action at all).
    fn has_vacuum(&mut self) -> bool;
    /// PRAGMA `name` with one argument is a query (table_info(t),
    /// integrity_check(n)...) rather than a setting.
    fn pragma_is_query(&mut self, name: &str) -> bool;
}

/// Classify a statement from its events and `sqlite3_stmt_readonly`.
///
/// For a PRAGMA with a value, `readonly` must come from a compile *without*
/// the Ignore verdict (the caller re-prepares when `pragma_is_query`).
pub fn classify(ev: &Events, readonly: bool, probe: &mut dyn Probe) -> Classification {
    let info = |kind| Info {
        kind,
        is_ddl: ev.ddl,
        uses_temp: ev.uses_temp,
        uses_attached: ev.uses_attached,
        setting: false,
    };
    if ev.explain {
        return Classification {
            info: Info {
                is_ddl: false,
                ..info(Kind::Read)
            },
            control: None,
        };
    }
    if let Some(c) = &ev.control {
        return Classification {
            info: info(Kind::Transaction),
            control: Some(c.clone()),
        };
    }
    let kind = if ev.attach_detach {
        Kind::Connection
    } else if let Some(p) = &ev.pragma {
        if p.has_value && !probe.pragma_is_query(&p.name) {
            return Classification {
                info: Info {
                    setting: true,
                    ..info(Kind::Connection)
                },
                control: None,
            };
        } else if readonly {
            Kind::Read
        } else {
            // journal_mode, wal_checkpoint, optimize(...): the writer,
            // outside any transaction (as SQLite requires for some).
            Kind::Connection
        }
    } else if readonly {
        if ev.writing_function {
            Kind::ReadWrites
        } else {
            Kind::Read
        }
    } else if ev.dml || ev.ddl || !probe.has_vacuum() {
        // The last case: a no-op `DROP TABLE IF EXISTS missing`, which
        // SQLite forces non-read-only without reporting an action.
        Kind::Write
    } else {
        Kind::Connection
    };
    Classification {
        info: info(kind),
        control: None,
    }
}

#[cfg(test)]
mod tests {
    use super::action::*;
    use super::*;

    struct Fake {
        vacuum: bool,
        query_pragmas: &'static [&'static str],
        asked: Vec<String>,
    }

    impl Probe for Fake {
        fn has_vacuum(&mut self) -> bool {
            self.asked.push("vacuum".into());
            self.vacuum
        }
        fn pragma_is_query(&mut self, name: &str) -> bool {
            self.asked.push(format!("pragma {name}"));
            self.query_pragmas.contains(&name)
        }
    }

    fn fake() -> Fake {
        Fake {
            vacuum: false,
            query_pragmas: &["table_info", "integrity_check"],
            asked: Vec::new(),
        }
    }

    type Ev<'a> = (
        i32,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
    );

    fn run(events: &[Ev<'_>], readonly: bool, probe: &mut Fake) -> Classification {
        let mut ev = Events::default();
        for &(c, a, b, s, t) in events {
            ev.record(c, a, b, s, t);
        }
        classify(&ev, readonly, probe)
    }

    fn kind(events: &[Ev<'_>], readonly: bool) -> Kind {
        run(events, readonly, &mut fake()).info.kind
    }

    #[test]
    fn plain_reads_and_writes() {
        let select = [
            (SELECT, None, None, None, None),
            (READ, Some("t"), Some("a"), Some("main"), None),
        ];
        assert_eq!(kind(&select, true), Kind::Read);
        let insert = [
            (INSERT, Some("t"), None, Some("main"), None),
            (READ, Some("t"), Some("a"), Some("main"), None),
        ];
        let c = run(&insert, false, &mut fake());
        assert_eq!(c.info.kind, Kind::Write);
        assert!(!c.info.is_ddl && !c.info.uses_temp && !c.info.readonly());
        // A statement with no events at all that reads (SELECT 1).
        assert_eq!(kind(&[], true), Kind::Read);
    }

    #[test]
    fn writing_functions_make_a_read_write() {
        let f = |name| {
            kind(
                &[
                    (SELECT, None, None, None, None),
                    (FUNCTION, None, Some(name), None, None),
                ],
                true,
            )
        };
        assert_eq!(f("notify"), Kind::ReadWrites);
        assert_eq!(f("HONKER_ENQUEUE"), Kind::ReadWrites);
        assert_eq!(f("honker_get_job"), Kind::Read);
        assert_eq!(f("upper"), Kind::Read);
        // A write that also calls one is a write.
        let w = [
            (INSERT, Some("t"), None, Some("main"), None),
            (FUNCTION, None, Some("notify"), None, None),
        ];
        assert_eq!(kind(&w, false), Kind::Write);
    }

    #[test]
    fn writing_function_list_has_no_read_only_honker_function() {
        for name in [
            "honker_get_job",
            "honker_result_get",
            "honker_queue_next_claim_at",
            "honker_scheduler_soonest",
            "honker_scheduler_list",
            "honker_cron_next_after",
            "honker_stream_read_since",
            "honker_stream_get_offset",
        ] {
            assert!(!is_writing_function(name), "{name}");
        }
        assert!(is_writing_function("Notify"));
    }

    #[test]
    fn transaction_control_with_action_and_name() {
        let c = run(
            &[(TRANSACTION, Some("BEGIN"), None, None, None)],
            true,
            &mut fake(),
        );
        assert_eq!(c.info.kind, Kind::Transaction);
        assert_eq!(c.control, Some((Control::Begin, None)));
        for (op, want) in [("COMMIT", Control::Commit), ("ROLLBACK", Control::Rollback)] {
            let c = run(
                &[(TRANSACTION, Some(op), None, None, None)],
                true,
                &mut fake(),
            );
            assert_eq!(c.control, Some((want, None)));
        }
        for (op, want) in [
            ("BEGIN", Control::Savepoint),
            ("RELEASE", Control::Release),
            ("ROLLBACK", Control::RollbackTo),
        ] {
            let c = run(
                &[(SAVEPOINT, Some(op), Some("a b"), None, None)],
                true,
                &mut fake(),
            );
            assert_eq!(c.info.kind, Kind::Transaction);
            assert_eq!(c.control, Some((want, Some("a b".to_string()))));
            assert!(!c.info.readonly());
        }
        assert_eq!(Control::RollbackTo.as_str(), "rollback_to");
    }

    #[test]
    fn pragmas_read_or_set() {
        // No value, read-only program: a read.
        let q = [(PRAGMA, Some("user_version"), None, None, None)];
        assert_eq!(kind(&q, true), Kind::Read);
        // No value, a program that writes (journal_mode, wal_checkpoint).
        assert_eq!(kind(&q, false), Kind::Connection);
        // A value: a setting, and compiled to nothing while classifying.
        let mut ev = Events::default();
        assert_eq!(
            ev.record(PRAGMA, Some("Query_Only"), Some("0"), None, None),
            Verdict::Ignore
        );
        assert_eq!(ev.pragma.as_ref().unwrap().name, "query_only");
        let mut p = fake();
        let c = classify(&ev, true, &mut p);
        assert_eq!(c.info.kind, Kind::Connection);
        assert!(c.info.setting);
        assert_eq!(p.asked, ["pragma query_only"]);
        // A value that is an argument of a query pragma: a read.
        let ti = [(PRAGMA, Some("TABLE_INFO"), Some("t"), Some("temp"), None)];
        let c = run(&ti, true, &mut fake());
        assert_eq!(c.info.kind, Kind::Read);
        assert!(c.info.uses_temp && c.info.writer_only());
        assert_eq!(kind(&ti, false), Kind::Connection);
        assert!(!run(&ti, false, &mut fake()).info.setting);
        // Nothing but a PRAGMA is ever ignored.
        let mut ev = Events::default();
        assert_eq!(
            ev.record(READ, Some("t"), Some("a"), Some("main"), None),
            Verdict::Allow
        );
    }

    #[test]
    fn attach_detach_and_vacuum_are_connection_level() {
        assert_eq!(
            kind(&[(ATTACH, Some("x.db"), None, None, None)], true),
            Kind::Connection
        );
        assert_eq!(
            kind(&[(DETACH, Some("x"), None, None, None)], true),
            Kind::Connection
        );
        // VACUUM reports nothing and is not read-only.
        let mut p = fake();
        p.vacuum = true;
        assert_eq!(run(&[], false, &mut p).info.kind, Kind::Connection);
        // Not read-only, nothing reported, no Vacuum: a no-op DROP ... IF EXISTS.
        let mut p = fake();
        assert_eq!(run(&[], false, &mut p).info.kind, Kind::Write);
        assert_eq!(p.asked, ["vacuum"]);
        // The probe is not asked when the events decide.
        let mut p = fake();
        run(
            &[(INSERT, Some("t"), None, Some("main"), None)],
            false,
            &mut p,
        );
        assert!(p.asked.is_empty());
    }

    #[test]
    fn ddl_and_temp() {
        let create = [
            (INSERT, Some("sqlite_master"), None, Some("main"), None),
            (CREATE_TABLE, Some("t"), None, Some("main"), None),
        ];
        let c = run(&create, false, &mut fake());
        assert_eq!(c.info.kind, Kind::Write);
        assert!(c.info.is_ddl && !c.info.uses_temp);
        let temp = [
            (INSERT, Some("sqlite_temp_master"), None, Some("temp"), None),
            (CREATE_TEMP_TABLE, Some("t"), None, Some("temp"), None),
        ];
        let c = run(&temp, false, &mut fake());
        assert!(c.info.is_ddl && c.info.uses_temp && !c.info.uses_attached);
        let c = run(
            &[(DROP_TEMP_VIEW, Some("v"), None, None, None)],
            false,
            &mut fake(),
        );
        assert!(c.info.is_ddl && c.info.uses_temp);
        for code in [ALTER_TABLE, REINDEX, ANALYZE, CREATE_VTABLE, DROP_TRIGGER] {
            assert!(
                run(&[(code, None, None, None, None)], false, &mut fake())
                    .info
                    .is_ddl
            );
        }
        let aux = [(READ, Some("t"), Some("a"), Some("aux"), None)];
        let c = run(&aux, true, &mut fake());
        assert_eq!(c.info.kind, Kind::Read);
        assert!(c.info.uses_attached && c.info.writer_only() && !c.info.uses_temp);
    }

    #[test]
    fn explain_only_reads() {
        let mut ev = Events::default();
        ev.record(TRANSACTION, Some("BEGIN"), None, None, None);
        ev.record(CREATE_TABLE, Some("t"), None, Some("temp"), None);
        ev.explain = true;
        let c = classify(&ev, false, &mut fake());
        assert_eq!(c.info.kind, Kind::Read);
        assert_eq!(c.control, None);
        assert!(!c.info.is_ddl && c.info.uses_temp);
    }

    #[test]
    fn kind_names() {
        let names: Vec<_> = [
            Kind::Read,
            Kind::Write,
            Kind::ReadWrites,
            Kind::Transaction,
            Kind::Connection,
        ]
        .iter()
        .map(|k| k.as_str())
        .collect();
        assert_eq!(
            names,
            ["read", "write", "read_writes", "transaction", "connection"]
        );
    }
}
