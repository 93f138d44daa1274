"""Seed range syntax, expanded before Hydra parses the command line."""

import pytest

from sympscale.seeds import RangeSyntaxError, expand_int_ranges, rewrite_args


@pytest.mark.parametrize(
    "value, expected",
    [
        ("1-10", ",".join(str(i) for i in range(1, 11))),
        ("1-3,7", "1,2,3,7"),
        ("5", "5"),
        ("5-5", "5"),
        ("0-2", "0,1,2"),
        ("range(1,4)", "range(1,4)"),
        ("choice(1,2)", "choice(1,2)"),
        ("1,2,3", "1,2,3"),
    ],
)
def test_expand(value, expected):
    assert expand_int_ranges("seed", value) == expected


@pytest.mark.parametrize("value, fragment", [("10-1", "empty"), ("a-b", "'a-b'"), ("1-", "'1-'"), ("1-3,2", "twice")])
def test_refused(value, fragment):
    with pytest.raises(RangeSyntaxError, match=fragment):
        expand_int_ranges("seed", value)


def test_rewrite_args_only_touches_seed_keys():
    args = ["-m", "system=toda,fput", "D=64,256", "seed=1-3", "+data_seed=0-1", "name=a-b"]
    assert rewrite_args(args) == ["-m", "system=toda,fput", "D=64,256", "seed=1,2,3", "+data_seed=0,1", "name=a-b"]


def test_numeric_group_choices_are_quoted():
    assert rewrite_args(["bptt_window=4,32,full", "bptt_window=choice(4,32)"]) == [
        "bptt_window='4','32',full",
        "bptt_window=choice(4,32)",
    ]
