"""Requirements of the compliance suite for ``sqlite+honker``.

Opens what SQLite (3.53, as bundled by the native layer) supports, closes
what SQLite itself lacks. Each closed item says why.
"""

import os

from sqlalchemy.testing import exclusions
from sqlalchemy.testing.requirements import SuiteRequirements


def _open():
    return exclusions.open()


def _closed():
    return exclusions.closed()


class Requirements(SuiteRequirements):
    # -- DDL ----------------------------------------------------------------
    @property
    def create_table_as(self):
        return _open()

    @property
    def create_temp_table_as(self):
        return _open()

    @property
    def table_ddl_if_exists(self):
        return _open()

    @property
    def index_ddl_if_exists(self):
        return _open()

    @property
    def implicitly_named_constraints(self):
        # SQLite does not name unnamed constraints.
        return _closed()

    @property
    def deferrable_fks(self):
        return _open()

    @property
    def computed_columns(self):
        return _open()

    @property
    def computed_columns_stored(self):
        return _open()

    @property
    def computed_columns_virtual(self):
        return _open()

    @property
    def computed_columns_reflect_persisted(self):
        return _open()

    @property
    def server_defaults(self):
        return _open()

    @property
    def expression_server_defaults(self):
        return _open()

    @property
    def views(self):
        return _open()

    @property
    def temporary_views(self):
        return _open()

    @property
    def indexes_with_expressions(self):
        return _open()

    # -- reflection ------------------------------------------------------------
    @property
    def indexes_check_column_order(self):
        return _open()

    @property
    def repeated_column_foreign_keys(self):
        return _open()

    @property
    def repeated_remote_col_foreign_keys(self):
        return _open()

    @property
    def reflect_table_options(self):
        # sqlite_with_rowid / sqlite_strict
        return _open()

    @property
    def reflects_pk_names(self):
        return _open()

    @property
    def foreign_key_constraint_name_reflection(self):
        return _open()

    @property
    def foreign_key_constraint_option_reflection_ondelete(self):
        return _open()

    @property
    def fk_constraint_option_reflection_ondelete_restrict(self):
        return _open()

    @property
    def fk_constraint_option_reflection_ondelete_noaction(self):
        return _open()

    @property
    def foreign_key_constraint_option_reflection_onupdate(self):
        return _open()

    @property
    def fk_constraint_option_reflection_onupdate_restrict(self):
        return _open()

    @property
    def temp_table_names(self):
        return _open()

    @property
    def has_temp_table(self):
        return _open()

    @property
    def inline_check_constraint_reflection(self):
        return _open()

    @property
    def check_constraint_reflection(self):
        return _open()

    @property
    def unicode_ddl(self):
        return _open()

    # -- SQL -----------------------------------------------------------------
    @property
    def parens_in_union_contained_select_w_limit_offset(self):
        # SQLite's grammar has no parenthesized members in a compound SELECT.
        return _closed()

    @property
    def parens_in_union_contained_select_wo_limit_offset(self):
        return _closed()

    @property
    def boolean_col_expressions(self):
        return _open()

    @property
    def nullsordering(self):
        return _open()

    @property
    def intersect(self):
        return _open()

    @property
    def except_(self):
        return _open()

    @property
    def window_functions(self):
        return _open()

    @property
    def window_range(self):
        return _open()

    @property
    def window_range_numeric(self):
        return _open()

    @property
    def window_range_non_numeric(self):
        # SQLite's RANGE frames take numeric offsets only (no dates/intervals).
        return _closed()

    @property
    def ctes(self):
        return _open()

    @property
    def ctes_with_update_delete(self):
        return _open()

    @property
    def ctes_with_values(self):
        return _open()

    @property
    def tuple_in(self):
        return _open()

    @property
    def update_from(self):
        return _open()

    @property
    def mod_operator_as_percent_sign(self):
        return _open()

    @property
    def order_by_label_with_expression(self):
        return _open()

    @property
    def aggregate_order_by(self):
        return _open()

    @property
    def supports_bitwise_or(self):
        return _open()

    @property
    def supports_bitwise_and(self):
        return _open()

    @property
    def supports_bitwise_not(self):
        return _open()

    @property
    def supports_bitwise_shift(self):
        return _open()

    # -- types -----------------------------------------------------------------
    @property
    def json_type(self):
        return _open()

    @property
    def datetime_historic(self):
        return _open()

    @property
    def date_historic(self):
        return _open()

    @property
    def timestamp_microseconds(self):
        return _open()

    @property
    def legacy_unconditional_json_extract(self):
        return _open()

    @property
    def float_or_double_precision_behaves_generically(self):
        return _open()

    @property
    def infinity_floats(self):
        return _open()

    @property
    def nvarchar_types(self):
        return _open()

    @property
    def datetime_literals(self):
        return _open()

    def get_order_by_collation(self, config):
        return "NOCASE"

    # -- driver / transactions --------------------------------------------------
    @property
    def dbapi_lastrowid(self):
        return _open()

    @property
    def savepoints(self):
        return _open()

    @property
    def isolation_level(self):
        return _open()

    def get_isolation_levels(self, config):
        return {
            "default": "SERIALIZABLE",
            "supported": ["SERIALIZABLE", "READ UNCOMMITTED", "AUTOCOMMIT"],
        }

    @property
    def autocommit(self):
        return _open()

    @property
    def skip_autocommit_rollback(self):
        return _open()

    @property
    def schemas(self):
        if os.environ.get("HONKER_COMPLIANCE_READERS") == "1":
            return _closed()  # the reader-pool pass attaches no test_schema
        return super().schemas

    @property
    def independent_connections(self):
        # Closed as for every SQLite driver: the suite's "independent
        # connection" tests expect concurrent writers (row locks), and
        # SQLite has one writer per file.
        return _closed()

    @property
    def regexp_match(self):
        # REGEXP backed by Python's re, registered by the dialect on the
        # shared Database (Database.create_function), as the stock driver does.
        return _open()
