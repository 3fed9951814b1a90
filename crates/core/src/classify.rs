//! SQL statement classification (which connection a statement runs on,
//! whether it is transaction control or connection-level). Empty for now:
//! the keyword parsing still lives in the native crate's `sqltext.rs` and
//! moves here with the statement classifier.
