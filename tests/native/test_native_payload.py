"""The one JSON payload codec: ``_native.encode_payload``, also used by the
native ``Transaction.notify``."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alkdev_storage import _native

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_compact_json_that_round_trips(value):
    text = _native.encode_payload(value)
    assert isinstance(text, str)
    assert text == json.dumps(value, separators=(",", ":"), allow_nan=False)
    assert json.loads(text) == value


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, [1.0, math.nan]])
def test_nan_and_infinity_are_refused(bad):
    with pytest.raises(TypeError, match=rf"payload of type {type(bad).__name__} cannot be encoded"):
        _native.encode_payload(bad)


def test_unencodable_objects_name_the_payload_type():
    with pytest.raises(TypeError, match=r"payload of type set cannot be encoded as JSON") as e:
        _native.encode_payload({1, 2})
    assert isinstance(e.value.__cause__, TypeError)
    circular: list[object] = []
    circular.append(circular)
    with pytest.raises(TypeError, match=r"payload of type list cannot be encoded"):
        _native.encode_payload(circular)
    with pytest.raises(TypeError, match=r"result value of type object cannot be encoded"):
        _native.encode_payload(object(), "result value")


def test_keyboard_interrupt_is_not_turned_into_type_error():
    class Interrupting(dict[str, object]):
        def items(self) -> Any:
            raise KeyboardInterrupt

    # json's C encoder calls items() of a dict subclass.
    with pytest.raises(KeyboardInterrupt):
        _native.encode_payload(Interrupting(a=1))


def test_transaction_notify_uses_the_same_codec(db):
    db.bootstrap_honker_schema()
    with db.transaction() as tx:
        with pytest.raises(TypeError, match=r"payload of type float cannot be encoded"):
            tx.notify("ch", math.nan)
        nid = tx.notify("ch", {"a": [1, 2.5, None], "b": "é"})
    row = db.fetchone("SELECT channel, payload FROM _honker_notifications WHERE id = ?", (nid,))
    assert row == ("ch", _native.encode_payload({"a": [1, 2.5, None], "b": "é"}))
    assert row[1] == '{"a":[1,2.5,null],"b":"\\u00e9"}'
