"""The cluster client finds a stream read's keys itself (they follow STREAMS), instead of
asking a server with COMMAND GETKEYS for every read."""

from __future__ import annotations

from core.redis_cluster import stream_read_keys


def test_the_keys_of_a_stream_read_are_the_first_half_after_streams() -> None:
    read = ("XREADGROUP", "GROUP", "g", "c", "COUNT", 10, "STREAMS", "a{1}", "b{1}", ">", ">")
    assert stream_read_keys(read) == ("a{1}", "b{1}")
    assert stream_read_keys((b"XREAD", b"BLOCK", 5, b"STREAMS", b"s", b"0")) == (b"s",)


def test_a_group_or_consumer_called_streams_is_not_taken_for_the_keyword() -> None:
    read = ("xreadgroup", "GROUP", "STREAMS", "STREAMS", "STREAMS", "k", ">")
    assert stream_read_keys(read) == ("k",)


def test_other_commands_and_malformed_reads_are_left_to_redis_py() -> None:
    assert stream_read_keys(("GET", "k")) is None
    assert stream_read_keys(()) is None
    assert stream_read_keys(("XREADGROUP", "GROUP", "g", "c", "STREAMS", "a", "b", ">")) is None
    assert stream_read_keys(("XREAD", "COUNT", 1)) is None
