"""SQLAlchemy's dialect compliance suite (README.dialects.rst)."""

from sqlalchemy.testing.suite import *  # noqa: F403
