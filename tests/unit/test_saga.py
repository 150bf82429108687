"""The saga's deadlines: unanswered commands are sent again after the reply timeout, a reserve that
never is answered gives its attempt up, and a release or fulfil is never given up."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from oms_streams.domain.saga import Awaited, ReplyPolicy, chase, next_deadline

POLICY = ReplyPolicy(timeout_ms=30_000, max_sends=3)
T0 = 1_700_000_000_000


def a_command(kind: str = "reserve", *, sent_s_ago: float = 0, sends: int = 1) -> Awaited:
    return Awaited(kind=kind, sent_ms=T0 - int(sent_s_ago * 1000), sends=sends)


def test_a_command_answered_within_the_timeout_is_left_alone():
    decision = chase([a_command(sent_s_ago=29.999)], T0, POLICY)

    assert decision.resend == () and not decision.give_up


def test_a_command_unanswered_for_the_timeout_is_sent_again():
    decision = chase([a_command(sent_s_ago=29), a_command(sent_s_ago=30)], T0, POLICY)

    assert decision.resend == (1,) and not decision.give_up


def test_a_reserve_unanswered_after_its_last_send_gives_the_attempt_up_and_is_not_sent_again():
    awaited = [
        a_command("reserve", sent_s_ago=31, sends=3),
        a_command("reserve", sent_s_ago=31, sends=1),  # another SKU of the attempt
        a_command("release", sent_s_ago=31, sends=1),  # an earlier attempt's release
    ]

    decision = chase(awaited, T0, POLICY)

    assert decision.give_up
    assert decision.resend == (2,)  # the reserves are replaced by releases: only the release goes


def test_the_last_send_still_waits_its_whole_timeout_before_the_attempt_is_given_up():
    decision = chase([a_command("reserve", sent_s_ago=10, sends=3)], T0, POLICY)

    assert decision == chase([], T0, POLICY)
    assert not decision.give_up


def test_a_release_or_fulfil_is_sent_again_however_often_it_went_unanswered():
    awaited = [a_command("release", sent_s_ago=40, sends=50), a_command("fulfil", sent_s_ago=30, sends=9)]

    decision = chase(awaited, T0, POLICY)

    assert decision.resend == (0, 1) and not decision.give_up


def test_the_next_deadline_is_the_oldest_send_plus_the_timeout():
    awaited = [a_command(sent_s_ago=5), a_command("fulfil", sent_s_ago=20), a_command(sent_s_ago=1)]

    assert next_deadline(awaited, POLICY) == T0 - 20_000 + 30_000
    assert next_deadline([], POLICY) is None


@given(
    st.lists(
        st.tuples(st.sampled_from(["reserve", "release", "fulfil"]), st.integers(0, 90), st.integers(1, 5)),
        max_size=8,
    ),
    st.integers(0, 90),
)
def test_nothing_is_chased_before_the_deadline_and_something_is_at_it(commands, elapsed_s):
    awaited = [Awaited(kind, T0 + at_s * 1000, sends) for kind, at_s, sends in commands]
    now = T0 + elapsed_s * 1000

    decision = chase(awaited, now, POLICY)

    deadline = next_deadline(awaited, POLICY)
    acted = bool(decision.resend) or decision.give_up
    assert acted == (deadline is not None and now >= deadline)
    assert all(now - awaited[i].sent_ms >= POLICY.timeout_ms for i in decision.resend)
