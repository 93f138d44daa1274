"""Command-line rewriting before Hydra parses it: integer ranges for seeds, numeric group choices.

`seed=1-10`, `seed=1-3,7`:

Hydra's grammar reads `1-10` as the string "1-10" (one job, silently), and a typed `seed: int` then fails at
composition, before any sweeper runs. So ranges are expanded here, on the raw command line (and on
YAML-defined sweep parameters by the sweeper), into the comma lists Hydra sweeps natively.

`bptt_window=4,32`: Hydra parses `4` as an int, and a config-group choice must be a string, so numeric
choices of such groups are quoted (`bptt_window='4','32'`).
"""

from __future__ import annotations

import re

RANGE_KEYS = ("seed", "data_seed")
MAX_RANGE = 10_000  # values in one range: a larger grid is refused by a size check, not by running out of memory
NUMERIC_GROUPS = ("bptt_window",)  # config groups whose option names are numbers
_ITEM = re.compile(r"^\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?$")
_ARG = re.compile(r"^(?P<prefix>\+{0,2})(?P<key>[A-Za-z_][\w.]*)=(?P<value>.*)$", re.S)


class RangeSyntaxError(ValueError):
    """A seed range that cannot be expanded."""


def expand_int_ranges(key: str, value: str) -> str:
    """'1-3,7' -> '1,2,3,7'. Hydra sweep functions (range(...), choice(...)), plain ints and an interpolation of
    another key (`data_seed=${seed}`: every seed its own dataset) pass through."""
    text = value.strip()
    if not text or re.match(r"^\w+\(", text) or re.fullmatch(r"-?\d+|\$\{[\w.]+\}", text):
        return value
    out: list[int] = []
    for part in text.split(","):
        m = _ITEM.match(part)
        if not m:
            raise RangeSyntaxError(
                f"{key}={value!r}: {part.strip()!r} is not an integer or a range 'a-b' "
                f"(valid: {key}=1-10, {key}=1-3,7, {key}=range(1,11))"
            )
        lo, hi = int(m.group(1)), int(m.group(2) if m.group(2) is not None else m.group(1))
        if hi < lo:
            raise RangeSyntaxError(f"{key}={value!r}: range {lo}-{hi} is empty (write {hi}-{lo})")
        if len(out) + hi - lo + 1 > MAX_RANGE:
            raise RangeSyntaxError(
                f"{key}={value!r} has {len(out) + hi - lo + 1:,} values; at most {MAX_RANGE:,} in one command "
                f"(split the sweep)"
            )
        out.extend(range(lo, hi + 1))
    if len(set(out)) != len(out):
        raise RangeSyntaxError(f"{key}={value!r} lists some values twice")
    return ",".join(str(v) for v in out)


def quote_numeric_choices(value: str) -> str:
    """'4,32,full' -> "'4','32',full" (sweep functions such as choice(...) pass through)."""
    if re.match(r"^\w+\(", value.strip()):
        return value
    return ",".join(f"'{v.strip()}'" if re.fullmatch(r"\s*\d+\s*", v) else v for v in value.split(","))


def rewrite_arg(key: str, value: str) -> str:
    """The value Hydra should see for `key=value`."""
    if key in RANGE_KEYS:
        return expand_int_ranges(key, value)
    if key in NUMERIC_GROUPS:
        return quote_numeric_choices(value)
    return value


def rewrite_args(args: list[str]) -> list[str]:
    """Rewrite seed ranges and numeric group choices in command-line overrides; leave everything else alone."""
    out = []
    for arg in args:
        m = _ARG.match(arg)
        if m:
            arg = f"{m.group('prefix')}{m.group('key')}={rewrite_arg(m.group('key'), m.group('value'))}"
        out.append(arg)
    return out
