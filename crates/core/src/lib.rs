//! The part of alkdev-storage that needs no Python interpreter, so
//! `cargo test` exercises it directly:
//!
//! * [`busywait`]: how a connection polls for another process's lock
//!   (the busy handler's policy and its timeout message);
//! * [`codes`]: names of SQLite result codes;
//! * [`walindex`]: reading and comparing the WAL-index header (is the
//!   implicit read transaction of a reader still current?);
//! * [`pool`]: the single writer slot and the bounded reader pool,
//!   generic over the connection type and over how a thread waits
//!   (the native crate waits with the GIL released);
//! * [`registry`]: one engine per database file per process;
//! * [`classify`]: statement classification (where a statement runs),
//!   from the actions SQLite reports while compiling it.
//!
//! Nothing here knows about PyO3; the native crate (`crates/native`)
//! builds the Python objects on top.

pub mod busywait;
pub mod classify;
pub mod codes;
pub mod pool;
pub mod registry;
pub mod walindex;
