"""tracking.Links remembers the tokens it made: each answer is still exactly the token
tracktokens.encode makes for those fields, however often and in whatever order asked."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.domain import tracktokens
from postroom.domain.tracktokens import Kind
from postroom.services.tracking import Links

DELIVERY = "0b6d2f0e-4a1c-4f3e-9d52-5c3f0e1a2b3c"
ASKS = st.lists(st.tuples(st.sampled_from(list(Kind)), st.integers(0, 3)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(ASKS, st.binary(min_size=1, max_size=32), st.integers(0, 2**32 - 1))
def test_every_token_is_the_one_encode_makes(
    asks: list[tuple[Kind, int]], key: bytes, key_id: int
) -> None:
    links = Links("https://t.example", DELIVERY, key_id, key)
    for kind, position in asks:
        expected = tracktokens.encode(kind, DELIVERY, position, key_id=key_id, key=key)
        assert links.token(kind, position) == expected
        assert links.url(kind, position).endswith("/" + expected)
