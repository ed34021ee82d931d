"""The fast RFC 3339 formatter writes what ``datetime.isoformat`` writes."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from hector_py.timestamps import rfc3339


def _reference(moment: float) -> str:
    stamp = datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


@settings(derandomize=True, max_examples=2000)
@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_rfc3339_matches_datetime(moment: float) -> None:
    assert rfc3339(moment) == _reference(moment)


def test_rfc3339_edges() -> None:
    # the rounding edge (just under a whole second) and a second boundary after a cached one
    for moment in (0.0, 1.9999996, 1.9999994, 1_700_000_000.9995, 1_700_000_001.0, 59.999):
        assert rfc3339(moment) == _reference(moment)
