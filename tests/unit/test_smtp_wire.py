"""Dot-stuffing of the wire form (RFC 5321 §4.5.2), checked against its inverse."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from postroom.mta.session import dot_stuff


def _unstuff(data: bytes) -> bytes:
    # What a receiver does (RFC 5321 §4.5.2): drop the first "." of a line starting "..".
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in data.split(b"\r\n"))


def test_leading_dots_are_doubled_on_every_line() -> None:
    assert dot_stuff(b".a\r\n..b\r\nc.\r\n.\r\n") == b"..a\r\n...b\r\nc.\r\n..\r\n"


@given(st.lists(st.sampled_from([b"", b".", b"..", b"a", b".a", b"a.", b". x"]), max_size=12))
def test_stuffing_round_trips_and_never_ends_the_data_early(lines: list[bytes]) -> None:
    data = b"".join(line + b"\r\n" for line in lines)
    stuffed = dot_stuff(data)
    assert _unstuff(stuffed) == data
    assert b"\r\n.\r\n" not in b"\r\n" + stuffed  # no lone dot line before the real end
