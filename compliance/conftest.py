"""SQLAlchemy's compliance-suite plugin, with the sqlite+honker dialect
registered (also installed through the package's entry point)."""

import os
import sys

import pytest
from sqlalchemy.dialects import registry

sys.path.insert(0, os.path.dirname(__file__))

registry.register("sqlite.honker", "alkdev_storage.sqlalchemy.dialect", "HonkerDialect")

pytest.register_assert_rewrite("sqlalchemy.testing.assertions")

from sqlalchemy.testing.plugin.pytestplugin import *  # noqa: E402,F403
