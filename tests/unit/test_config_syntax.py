"""The NATS config syntax parser (leafnode-protocol.md §8): ``leafnode.config.parse``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leafnode.config import ConfigError, parse

if TYPE_CHECKING:
    from pathlib import Path


def p(text: str, **env: str) -> dict[str, object]:
    return parse(text, environ=env)


def error(text: str, **env: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text, environ=env)
    return info.value


class TestKeyValue:
    @pytest.mark.parametrize(
        "text",
        [
            "port: 4222",
            "port = 4222",
            "port 4222",
            "port:4222",
            "port=4222",
            "port\t4222",
            "port :  4222",
            "  port: 4222  ",
        ],
    )
    def test_separators(self, text: str) -> None:
        assert p(text) == {"port": 4222}

    def test_key_and_value_on_different_lines_without_separator(self) -> None:
        assert p("port\n\n4222\n") == {"port": 4222}

    @pytest.mark.parametrize("text", ['"my key": 1', "'my key': 1", '"my key" 1', "'my key' = 1"])
    def test_quoted_keys(self, text: str) -> None:
        assert p(text) == {"my key": 1}

    def test_quoted_key_may_contain_separators(self) -> None:
        assert p('"a:b=c": x') == {"a:b=c": "x"}

    @pytest.mark.parametrize("sep", ["\n", ",", ";", "\r\n", " ,", "; "])
    def test_value_terminators(self, sep: str) -> None:
        assert p(f"a: 1{sep}b: two{sep}c: true") == {"a": 1, "b": "two", "c": True}

    def test_brace_ends_a_value_in_a_block(self) -> None:
        assert p("a { b: x}") == {"a": {"b": "x"}}

    def test_last_definition_wins(self) -> None:
        assert p("a: 1\na: 2") == {"a": 2}

    def test_empty_text(self) -> None:
        assert p("") == {}
        assert p("  \n# only a comment\n// another\n") == {}

    def test_keys_keep_their_case(self) -> None:
        assert p("Port: 1") == {"Port": 1}


class TestComments:
    def test_hash_and_slash_comments(self) -> None:
        text = "# top\n// top too\na: 1 # after a value\nb: 2 // also\n  # indented\n"
        assert p(text) == {"a": 1, "b": 2}

    def test_comments_in_blocks_and_arrays(self) -> None:
        text = "a {\n  # c\n  b: 1 // c\n  // c\n}\nl: [\n  # c\n  x, // c\n  y # c\n]\n"
        assert p(text) == {"a": {"b": 1}, "l": ["x", "y"]}

    def test_hash_inside_a_bare_value_is_kept(self) -> None:
        # nats-server only starts a comment where a value may end.
        assert p("pass: ab#cd") == {"pass": "ab#cd"}

    def test_hash_inside_quotes_is_kept(self) -> None:
        assert p('a: "x # y"') == {"a": "x # y"}


class TestBlocks:
    @pytest.mark.parametrize(
        "text", ["a { b: 1 }", "a: { b: 1 }", "a = { b: 1 }", "a\n{\n b: 1\n}"]
    )
    def test_block_forms(self, text: str) -> None:
        assert p(text) == {"a": {"b": 1}}

    def test_nested_blocks(self) -> None:
        text = "a {\n  b {\n    c { d: [1, {e: f}] }\n  }\n  g: h\n}\n"
        assert p(text) == {"a": {"b": {"c": {"d": [1, {"e": "f"}]}}, "g": "h"}}

    def test_empty_block(self) -> None:
        assert p("a {}") == {"a": {}}

    def test_top_level_wrapped_in_braces(self) -> None:
        assert p('{\n  "port": 4222,\n  "debug": true\n}\n') == {"port": 4222, "debug": True}

    def test_json_like_file(self) -> None:
        text = '{"a": {"b": [1, 2, "x"]}, "c": "d"}'
        assert p(text) == {"a": {"b": [1, 2, "x"]}, "c": "d"}


class TestArrays:
    def test_inline(self) -> None:
        assert p("a: [1, two, 'three', \"four\"]") == {"a": [1, "two", "three", "four"]}

    def test_one_item_per_line(self) -> None:
        assert p("a: [\n  x\n  y\n\n  z\n]") == {"a": ["x", "y", "z"]}

    def test_mixed_separators_and_trailing_comma(self) -> None:
        assert p("a: [x,\n y\n z,]") == {"a": ["x", "y", "z"]}

    def test_empty_and_nested(self) -> None:
        assert p("a: []\nb: [[1], [], [x, [y]]]") == {"a": [], "b": [[1], [], ["x", ["y"]]]}

    def test_array_of_blocks(self) -> None:
        text = "users: [\n  {user: a, password: b}\n  {user: c, password: d}\n]"
        assert p(text) == {
            "users": [{"user": "a", "password": "b"}, {"user": "c", "password": "d"}]
        }

    def test_number_before_closing_bracket(self) -> None:
        # nats-server rejects "[1]" (it reads "1]" as a string); we read a number.
        assert p("a: [1]") == {"a": [1]}


class TestStrings:
    def test_double_quoted_escapes(self) -> None:
        assert p(r'a: "t\tn\nr\rq\"b\\"') == {"a": 't\tn\nr\rq"b\\'}

    def test_hex_escapes(self) -> None:
        assert p(r'a: "\x41\x62"') == {"a": "Ab"}

    def test_hex_escapes_form_utf8(self) -> None:
        assert p(r'a: "caf\xc3\xa9"') == {"a": "café"}

    def test_raw_string_keeps_backslashes(self) -> None:
        assert p(r"a: 'C:\new\table'") == {"a": r"C:\new\table"}

    def test_quoted_strings_may_span_lines(self) -> None:
        assert p('a: "x\ny"') == {"a": "x\ny"}

    def test_bare_words(self) -> None:
        assert p("a: hello.world-1_x/y") == {"a": "hello.world-1_x/y"}

    def test_bare_word_escapes(self) -> None:
        assert p(r"a: x\ty") == {"a": "x\ty"}

    def test_quoted_values_are_never_numbers_or_booleans(self) -> None:
        assert p('a: "1"\nb: \'true\'\nc: "$X"') == {"a": "1", "b": "true", "c": "$X"}

    def test_multi_line_string(self) -> None:
        text = 'a: (\n  line one\nline two "quoted" # not a comment\n)\nb: 1\n'
        assert p(text) == {"a": '\n  line one\nline two "quoted" # not a comment', "b": 1}

    def test_multi_line_string_paren_must_be_alone(self) -> None:
        text = "a: (\nx)\n )\n)"
        assert p(text) == {"a": "\nx)\n )"}

    def test_multi_line_string_crlf(self) -> None:
        assert p("a: (\r\nx\r\n)\r\nb: 1") == {"a": "\r\nx", "b": 1}

    def test_ip_addresses_are_strings(self) -> None:
        assert p("a: 127.0.0.1:4222\nb: 10.0.0.1\nc: :4222") == {
            "a": "127.0.0.1:4222",
            "b": "10.0.0.1",
            "c": ":4222",
        }

    def test_dates_are_kept_as_text(self) -> None:
        assert p("a: 2024-01-02T03:04:05Z") == {"a": "2024-01-02T03:04:05Z"}


class TestScalars:
    @pytest.mark.parametrize(
        ("word", "value"),
        [
            ("true", True),
            ("TRUE", True),
            ("yes", True),
            ("Yes", True),
            ("on", True),
            ("ON", True),
            ("false", False),
            ("False", False),
            ("no", False),
            ("NO", False),
            ("off", False),
            ("Off", False),
        ],
    )
    def test_booleans(self, word: str, value: bool) -> None:
        assert p(f"a: {word}") == {"a": value}

    def test_numbers(self) -> None:
        assert p("a: 0\nb: 42\nc: -7\nd: 1.5\ne: -0.25") == {
            "a": 0,
            "b": 42,
            "c": -7,
            "d": 1.5,
            "e": -0.25,
        }

    @pytest.mark.parametrize(
        ("text", "value"),
        [
            ("1K", 1000),
            ("1k", 1000),
            ("1KB", 1024),
            ("1kb", 1024),
            ("1Ki", 1024),
            ("1KiB", 1024),
            ("1kib", 1024),
            ("2M", 2_000_000),
            ("2MB", 2 * 1024**2),
            ("2MiB", 2_097_152),
            ("2mi", 2 * 1024**2),
            ("3G", 3 * 1000**3),
            ("3GB", 3 * 1024**3),
            ("3Gi", 3 * 1024**3),
            ("1T", 1000**4),
            ("1TB", 1024**4),
            ("1TiB", 1024**4),
            ("1P", 1000**5),
            ("1PB", 1024**5),
            ("1pi", 1024**5),
            ("1E", 1000**6),
            ("1EB", 1024**6),
            ("1eib", 1024**6),
            ("64KB", 65536),
            ("-1K", -1000),
        ],
    )
    def test_size_suffixes(self, text: str, value: int) -> None:
        assert p(f"a: {text}") == {"a": value}

    @pytest.mark.parametrize(
        ("text", "value"),
        [
            ('"2s"', "2s"),
            ("2s", "2s"),
            ("500ms", "500ms"),
            ("1h", "1h"),
            ("1m30s", "1m30s"),
            ('"1m"', "1m"),
            # The nats-server gotcha: an unquoted 1m is the number 1,000,000.
            ("1m", 1_000_000),
        ],
    )
    def test_durations_lex_as_strings_except_bare_sizes(self, text: str, value: object) -> None:
        assert p(f"a: {text}") == {"a": value}

    def test_digits_then_letters_is_a_string(self) -> None:
        assert p("a: 1k2\nb: 3x") == {"a": "1k2", "b": "3x"}


class TestInclude:
    def test_include_merges_into_top_level(self, tmp_path: Path) -> None:
        (tmp_path / "auth.conf").write_text("user: a\npassword: b\n")
        text = 'port: 1\ninclude "auth.conf"\nmax: 2\n'
        assert parse(text, base_dir=tmp_path) == {"port": 1, "user": "a", "password": "b", "max": 2}

    def test_include_merges_into_current_block(self, tmp_path: Path) -> None:
        (tmp_path / "users.conf").write_text("users: [{user: a}]\n")
        text = "authorization {\n  include 'users.conf'\n  timeout: 3\n}\n"
        assert parse(text, base_dir=tmp_path) == {
            "authorization": {"users": [{"user": "a"}], "timeout": 3}
        }

    def test_include_bare_path(self, tmp_path: Path) -> None:
        (tmp_path / "x.conf").write_text("a: 1")
        assert parse("include x.conf", base_dir=tmp_path) == {"a": 1}

    def test_include_is_relative_to_the_including_file(self, tmp_path: Path) -> None:
        sub = tmp_path / "conf.d"
        sub.mkdir()
        (sub / "one.conf").write_text('include "two.conf"\nb: 1\n')
        (sub / "two.conf").write_text("c: 2\n")
        assert parse('include "conf.d/one.conf"', base_dir=tmp_path) == {"c": 2, "b": 1}

    def test_later_keys_override_included_ones(self, tmp_path: Path) -> None:
        (tmp_path / "x.conf").write_text("a: 1\nb: 1\n")
        assert parse("include x.conf\nb: 2", base_dir=tmp_path) == {"a": 1, "b": 2}

    def test_included_keys_are_variables_for_later_values(self, tmp_path: Path) -> None:
        (tmp_path / "vars.conf").write_text("PORT: 4333\n")
        assert parse("include vars.conf\nport: $PORT", base_dir=tmp_path) == {
            "PORT": 4333,
            "port": 4333,
        }

    def test_include_keyword_needs_whitespace(self) -> None:
        # "include: x" is an ordinary key (an unknown field for the settings).
        assert p("include: x") == {"include": "x"}

    def test_error_inside_include_names_the_included_file(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.conf"
        bad.write_text("a: 1\nb: [1,,2]\n")
        with pytest.raises(ConfigError) as info:
            parse("x: 1\ninclude bad.conf\n", source=str(tmp_path / "main.conf"), base_dir=tmp_path)
        err = info.value
        assert (err.source, err.line, err.column) == (str(bad), 2, 7)
        assert str(err).startswith(f"{bad}:2:7: ")

    def test_missing_include_is_reported_at_the_include(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as info:
            parse("a: 1\n  include nope.conf\n", source="main.conf", base_dir=tmp_path)
        err = info.value
        assert (err.source, err.line, err.column) == ("main.conf", 2, 3)
        assert "nope.conf" in err.reason

    def test_include_cycle(self, tmp_path: Path) -> None:
        (tmp_path / "a.conf").write_text("include b.conf\n")
        (tmp_path / "b.conf").write_text("x: 1\ninclude a.conf\n")
        with pytest.raises(ConfigError) as info:
            parse("include a.conf", base_dir=tmp_path)
        assert info.value.source == str(tmp_path / "b.conf")
        assert info.value.line == 2
        assert "cycle" in info.value.reason

    @pytest.mark.parametrize("value", ["[a]", "{a: 1}", "(x\n)", "12", "\n"])
    def test_include_needs_a_file_name(self, value: str) -> None:
        assert "include file name" in error(f"include {value}").reason


class TestVariables:
    def test_earlier_top_level_key(self) -> None:
        assert p("A: 64KB\nmax_payload: $A") == {"A": 65536, "max_payload": 65536}

    def test_innermost_block_wins(self) -> None:
        text = "a: 1\nb {\n  c: $a\n  a: 2\n  d: $a\n  e { f: $a }\n}\ng: $a\n"
        assert p(text) == {"a": 1, "b": {"c": 1, "a": 2, "d": 2, "e": {"f": 2}}, "g": 1}

    def test_arrays_are_not_scopes(self) -> None:
        assert p("x: 5\nl: [$x, {y: $x}]") == {"x": 5, "l": [5, {"y": 5}]}

    def test_variable_may_hold_a_block(self) -> None:
        assert p("P: {publish: [a]}\nu: {permissions: $P}") == {
            "P": {"publish": ["a"]},
            "u": {"permissions": {"publish": ["a"]}},
        }

    def test_key_beats_environment(self) -> None:
        assert p("X: 1\na: $X", X="2") == {"X": 1, "a": 1}

    def test_environment(self) -> None:
        assert p("a: $TOKEN", TOKEN="s3cret") == {"a": "s3cret"}

    @pytest.mark.parametrize(
        ("raw", "value"),
        [
            ("64KB", 65536),
            ("42", 42),
            ("true", True),
            ("1.5", 1.5),
            ('"quoted x"', "quoted x"),
            ("[a, b]", ["a", "b"]),
            ("{x: 1}", {"x": 1}),
            ("", ""),
            ("2s", "2s"),
        ],
    )
    def test_environment_value_is_parsed_again(self, raw: str, value: object) -> None:
        assert p("a: $V", V=raw) == {"a": value}

    def test_environment_value_may_reference_another(self) -> None:
        assert p("a: $A", A="$B", B="7") == {"a": 7}

    def test_environment_reference_cycle(self) -> None:
        err = error("a: $A", A="$B", B="$A")
        assert (err.line, err.column) == (1, 4)
        assert "cycle" in err.reason

    def test_invalid_environment_value(self) -> None:
        err = error("x: 1\na: $V", V="a b")
        assert (err.line, err.column) == (2, 4)
        assert "environment variable V" in err.reason

    def test_undefined(self) -> None:
        err = error("a: 1\nb {\n  c:   $NOPE\n}")
        assert (err.line, err.column) == (3, 8)
        assert "$NOPE" in err.reason
        assert "not defined" in err.reason

    def test_later_key_is_not_visible(self) -> None:
        assert "not defined" in error("a: $b\nb: 1").reason

    def test_sibling_block_is_not_visible(self) -> None:
        assert "not defined" in error("x { a: 1 }\ny { b: $a }").reason

    @pytest.mark.parametrize("hash_", ["$2a$11$abcdefghijk", "$2b$12$xyz./ABC", "$2y$10$q"])
    def test_bcrypt_hashes_are_strings(self, hash_: str) -> None:
        assert p(f"password: {hash_}") == {"password": hash_}

    def test_variable_inside_quotes_is_not_expanded(self) -> None:
        assert p('a: "$HOME"', HOME="/root") == {"a": "$HOME"}


class TestErrors:
    @pytest.mark.parametrize(
        ("text", "line", "column", "reason"),
        [
            ("a: [1,,2]", 1, 7, "unexpected ','"),
            ("a: [,1]", 1, 5, "unexpected ','"),
            ('a: 1\nb: "abc', 2, 4, "unterminated string"),
            ("a: 'abc", 1, 4, "unterminated string"),
            ("a {\n  b: 1\n", 1, 3, "missing '}'"),
            ("a: [1,\n2", 1, 4, "missing ']'"),
            ("a: 1 2", 1, 6, "after a value"),
            ("a: 1\n}", 2, 1, "no matching '{'"),
            ("a: .5", 1, 4, "must start with a digit"),
            ("a: -x", 1, 4, "invalid number"),
            ("a: 1.5s", 1, 4, "invalid number"),
            ("a: 1.2.x", 1, 4, "invalid number"),
            ("a: 12-3", 1, 4, "invalid number"),
            ("a:\n1", 1, 3, "missing value"),
            ("x: 1\na", 2, 2, "missing value"),
            ("a: }", 1, 4, "expected a value"),
            ('  a: 1\n  b: "x\\q"', 2, 8, "invalid escape"),
            ('a: "\\x4"', 1, 5, "hexadecimal"),
            ('a: "\\xff"', 1, 4, "UTF-8"),
            ("a: 1kbb", 1, 4, "invalid size suffix"),
            ("a: 99999999999999999999", 1, 4, "out of range"),
            ("a: 16EB", 1, 4, "out of range"),
            ("a: (\nno end", 1, 4, "unterminated multi-line string"),
            ("authorization{ user: a }", 1, 1, "put a space"),
            ("= 1", 1, 1, "key separator"),
            ("a: [1 2]", 1, 7, "expected ',' or ']'"),
            ("a: [x}", 1, 6, "expected ',' or ']'"),
            ("a {\n  b: 1 c: 2\n}", 2, 8, "after a value"),
            ("a: 1\n[b]", 2, 1, "expected a key"),
            ('"unterminated: 1', 1, 1, "unterminated quoted key"),
            ("a b c", 1, 5, "after a value"),
        ],
    )
    def test_positions(self, text: str, line: int, column: int, reason: str) -> None:
        err = error(text)
        assert (err.source, err.line, err.column) == ("<string>", line, column), str(err)
        assert reason in err.reason
        assert str(err) == f"<string>:{line}:{column}: {err.reason}"

    def test_source_name_is_used(self) -> None:
        with pytest.raises(ConfigError) as info:
            parse("a: [", source="/etc/leafnode/leaf.conf")
        assert str(info.value).startswith("/etc/leafnode/leaf.conf:1:4: ")

    def test_columns_count_characters(self) -> None:
        err = error('é: "x"\nb: \t"é')
        assert (err.line, err.column) == (2, 5)

    def test_nesting_limit(self) -> None:
        err = error("a: " + "[" * 200 + "]" * 200)
        assert "nest" in err.reason


_ALPHABET = st.sampled_from(list("ab1$-.:= \t\n\r{}[](),;#/'\"\\xkKmM0e"))


@settings(max_examples=300, deadline=None)
@given(st.text(_ALPHABET, max_size=40))
def test_any_text_parses_or_raises_config_error(text: str) -> None:
    position = (1, 1)
    try:
        parse(text, environ={"a": "1", "b": "$a"})
    except ConfigError as err:
        position = (err.line, err.column)
    assert min(position) >= 1
