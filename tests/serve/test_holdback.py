"""The streaming hold-back rule: text that could be the start of a stop string waits until it is clear."""

from tulu.serve.engine import _holdback


def test_holdback_keeps_back_a_possible_stop_string_start():
    assert _holdback("Hello wor", ["world"]) == "Hello "  # 'wor' may become 'world'
    assert _holdback("Hello w", ["world", "wx"]) == "Hello "
    assert _holdback("Hello", ["world"]) == "Hello"  # no suffix of the text starts a stop string
    assert _holdback("a\n", ["\n\n"]) == "a"  # one newline of a two-newline stop
    assert _holdback("abc", []) == "abc"
    assert _holdback("", ["x"]) == ""
    # the longest matching start is held back, across several stop strings
    assert _holdback("say ENDE", ["END!", "ENDEX"]) == "say "
