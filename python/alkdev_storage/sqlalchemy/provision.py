"""SQLAlchemy testing provision hooks for ``sqlite+honker``.

SQLAlchemy's test plugin loads ``<dialect package>.provision`` for a
third-party dialect; importing SQLAlchemy's SQLite provisioning module
registers its hooks (file databases per test run, the ``test_schema``
attached database, upserts...) for the ``sqlite`` backend, which
``sqlite+honker`` is. The DB-API connection offers sqlite3's
``Connection.execute`` shortcut that those hooks call.
"""

from sqlalchemy.dialects.sqlite import provision  # noqa: F401
