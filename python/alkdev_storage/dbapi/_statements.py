"""What the driver keeps per SQL text: the native Statement and the facts
that route it, read once from the Statement's own classification.

An *entry* is the tuple ``(kind, stmt, description, flags)``; a tuple
because :meth:`Cursor.execute` unpacks one per call. No SQL is parsed
here: ``kind``, the DDL/TEMP flags, the transaction-control action and the
declared column types all come from the native :class:`Statement`.
"""

from __future__ import annotations

from typing import Any

from alkdev_storage import _native
from alkdev_storage.dbapi._types import description

#: Kinds (``Statement.kind``), as small ints for the hot path.
READ = 0  # read-only: a reader outside a transaction
WRITE = 1  # modifies the database (DML, DDL): begins the write transaction
READ_WRITES = 2  # read-only SQL calling a function that writes: a write
TRANSACTION = 3  # BEGIN/COMMIT/ROLLBACK [TO]/SAVEPOINT/RELEASE: mapped onto native objects
CONNECTION = 4  # ATTACH/DETACH/VACUUM/PRAGMA x = y: the writer, outside a transaction
PINNED_READ = 5  # a read while the Database has writer-only objects (ATTACH, TEMP)

KINDS = {
    "read": READ,
    "write": WRITE,
    "read_writes": READ_WRITES,
    "transaction": TRANSACTION,
    "connection": CONNECTION,
}

# Flags.
F_ROWS = 1  # returns rows (has result columns)
F_DML = 2  # a write that is not DDL: rowcount is the number of changed rows
F_DDL = 4  # changes the schema: cached Statements are dropped after it
F_TEMP = 8  # creates or names a TEMP object (exists on the writer only)
#: Flags that keep a write off the hot path (``Cursor.execute`` inline).
F_SLOW = F_ROWS | F_DDL | F_TEMP

#: (kind, Statement, description or None, flags); the description is typed
#: loosely for the hot path, which compares its length with a row's.
Entry = tuple[int, Any, Any, int]

#: Upper bound of the per-Database statement cache (cleared when exceeded).
STATEMENT_CACHE_SIZE = 1024


def entry_for(stmt: _native.Statement, pinned: bool) -> Entry:
    """The entry of a freshly prepared Statement. ``pinned``: reads must
    run where the writer-only objects are."""
    kind = KINDS[stmt.kind]
    columns = stmt.columns
    flags = F_ROWS if columns else 0
    if stmt.is_ddl:
        flags |= F_DDL
    elif kind == WRITE:
        flags |= F_DML
    if stmt.uses_temp:
        flags |= F_TEMP
    if kind == READ and pinned:
        kind = PINNED_READ
    return (kind, stmt, description(columns, stmt.decltypes), flags)
