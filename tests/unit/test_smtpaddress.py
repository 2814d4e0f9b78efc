"""mta/smtpaddress.py: the plain-address reading agrees with aiosmtpd's header parser."""

from __future__ import annotations

from aiosmtpd.smtp import SMTP
from hypothesis import given
from hypothesis import strategies as st

from postroom.mta.smtpaddress import plain_address

# Characters that matter to either reading: atext, specials, spaces, brackets, quotes.
_PIECES = st.sampled_from(
    list("abcXYZ019.-_+=!#$%&'*/?^`{|}~@<>()[]\":;,\\ \t") + ["SIZE=100", " BODY=8BITMIME"]
)
_TEXT = st.lists(_PIECES, max_size=30).map("".join)
# Mostly shaped like <local@host> params, so that the plain reading is often taken.
_LOCAL = st.text(alphabet="aZ0.-+_!'\"( ", min_size=1, max_size=8)
_HOST = st.text(alphabet="aaZZ00.-[] ", min_size=1, max_size=8)
_SHAPED = st.tuples(_LOCAL, _HOST, st.sampled_from(["", " ", "  ", "\t"]), _TEXT).map(
    lambda t: f"<{t[0]}@{t[1]}>{t[2]}{t[3]}"
)
_ARGS = st.one_of(_TEXT, _SHAPED, _SHAPED)


def _aiosmtpd(arg: str) -> tuple[str | None, str | None]:
    return SMTP._getaddr(_Session(), arg)  # type: ignore[arg-type]


class _Session:
    local_part_limit = 0


@given(_ARGS)
def test_any_argument_is_read_as_aiosmtpd_reads_it_or_left_to_it(arg: str) -> None:
    plain = plain_address(arg)
    if plain is not None:
        address, local, rest = plain
        assert (address, rest) == _aiosmtpd(arg)
        assert address.rpartition("@")[0] == local


@given(
    st.from_regex(r"\A[a-z0-9+_-]{1,20}(\.[a-z0-9]{1,5}){0,2}\Z"),
    st.from_regex(r"\A[a-z0-9]{1,10}(\.[a-z]{2,6}){1,2}\Z"),
    st.sampled_from(["", " SIZE=1000", "  BODY=8BITMIME SMTPUTF8", "\tSIZE=1"]),
)
def test_the_common_form_takes_the_plain_reading(local: str, host: str, params: str) -> None:
    arg = f"<{local}@{host}>{params}"
    plain = plain_address(arg)
    assert plain is not None
    assert (plain[0], plain[2]) == _aiosmtpd(arg)


def test_other_forms_are_left_to_the_header_parser() -> None:
    for arg in [
        '<"a b"@x.org>',
        "<a@[127.0.0.1]>",
        "a@x.org",
        "<a@x.org>(c) SIZE=1",
        "<a@x.org>SIZE=1",
        "<@r.org:a@x.org>",
        "<>",
        "<a..b@x.org>",
    ]:
        assert plain_address(arg) is None, arg
