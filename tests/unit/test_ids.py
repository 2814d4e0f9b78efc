"""IdFactory: the ids it formats itself are exactly what the stdlib would write."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from postroom.domain.ids import IdFactory, system_randbits


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_message_id_matches_uuid_version_4(bits: int) -> None:
    ids = IdFactory(randbits=lambda k: bits)
    assert ids.message_id() == str(uuid.UUID(int=bits, version=4))


def test_message_id_from_the_system_source_is_a_version_4_uuid() -> None:
    made = {IdFactory().message_id() for _ in range(1000)}
    assert len(made) == 1000
    for text in made:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text


@given(st.integers(min_value=1, max_value=300))
def test_system_randbits_stays_within_k_bits(k: int) -> None:
    assert 0 <= system_randbits(k) < 2**k


def test_system_randbits_uses_every_bit() -> None:
    # 64 draws of 13 bits: the top and bottom bits are each set in some draw (a biased or
    # truncated source would leave one of them always 0; chance of a false failure ~2^-63).
    draws = [system_randbits(13) for _ in range(64)]
    assert any(d >> 12 for d in draws)
    assert any(d & 1 for d in draws)


@given(
    st.integers(min_value=1, max_value=6).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(min_value=0, max_value=2 ** (128 * n) - 1))
    )
)
def test_message_ids_cut_one_draw_into_version_4_uuids(drawn: tuple[int, int]) -> None:
    count, bits = drawn
    asked: list[int] = []
    ids = IdFactory(randbits=lambda k: asked.append(k) or bits)
    expected = [str(uuid.UUID(int=bits >> 128 * i & (2**128 - 1), version=4)) for i in range(count)]
    assert ids.message_ids(count) == expected
    assert asked == [128 * count]


def test_message_ids_from_the_system_source_differ() -> None:
    made = IdFactory().message_ids(500)
    assert len(set(made)) == 500
    assert all(uuid.UUID(text).version == 4 for text in made)
