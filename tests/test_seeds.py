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


def test_users_grid_is_80_jobs_with_integer_seeds():
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = rewrite_args(["system=toda,fput", "D=64,256", "model=symp,gru", "seed=1-10"])
    parsed = OverridesParser.create().parse_overrides(args)
    jobs = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    assert len(jobs) == 80
    seeds = sorted({int(o.split("=")[1]) for job in jobs for o in job if o.startswith("seed=")})
    assert seeds == list(range(1, 11))
