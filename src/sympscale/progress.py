"""Progress of one training run: a tqdm bar on a terminal, plain log lines otherwise.

`Progress.update` takes the records that `training.fit` logs. On a terminal the bar shows the steps done, the
latest loss and horizon, the rate and the ETA; validation (and gradient-cosine) lines are printed above it.
Anywhere else (a log file, a pipe, a launcher's child) each record becomes one plain line, as `plain_line`
formats it, so logs stay greppable and free of carriage returns.

Plain lines can be forced on a terminal with the environment variable ``SYMPSCALE_PROGRESS=plain`` (``auto``,
the default, chooses by the stream); a terminal with ``TERM=dumb`` (Emacs shells, some CI consoles) also gets
plain lines, as it cannot redraw a line in place.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from tqdm import tqdm

ENV = "SYMPSCALE_PROGRESS"
MODES = ("auto", "plain")


def plain_line(rec: dict, lyap_per_step: float) -> str:
    """One log line for a record of `training.fit`: a training step, a gradient cosine or a validation.

    `lyap_per_step` (Lyapunov exponent x observation step) converts the validation VPT to Lyapunov times.
    """
    step, h = rec["step"], rec.get("horizon")
    if "loss" in rec:
        return f"  step {step:>6}  h {h:>4}  loss {rec['loss']:.4e}  |g| {rec['grad_norm']:.2e}  {rec['wall_s']:.1f}s"
    if "grad_cosine_full" in rec:
        return f"  step {step:>6}  cos(truncated, full-horizon gradient) {rec['grad_cosine_full']:.4f}"
    vpt = rec["val_vpt_steps"]
    return (
        f"  val  {step:>6}  h {h:>4}  VPT {vpt:.1f} steps ({vpt * lyap_per_step:.3f} Lyapunov times)  "
        f"one-step {rec['val_one_step_mse']:.3e}  rollout(h) {rec['val_rollout_mse']:.3e}"
    )


def _wants_bar(stream: TextIO) -> bool:
    mode = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"{ENV}={os.environ[ENV]!r} is not a progress mode; valid: {', '.join(MODES)}")
    isatty = getattr(stream, "isatty", None)
    tty = bool(isatty()) if callable(isatty) else False
    return mode == "auto" and tty and os.environ.get("TERM") != "dumb"


class Progress:
    """Reports one training run of `total_steps` steps to `stream` (stdout by default, where `print` goes).

    `initial` is the step a resumed run starts from: the bar starts there and its ETA counts only the steps
    this process runs. A run that stops early (divergence, patience) leaves the bar where it stopped.
    Use as a context manager, or call `close()` (idempotent) when training ends.
    """

    def __init__(self, total_steps: int, *, lyap_per_step: float, initial: int = 0, stream: TextIO | None = None):
        self.lyap_per_step = lyap_per_step
        self.stream = sys.stdout if stream is None else stream
        self._bar = None
        if _wants_bar(self.stream):
            self._bar = tqdm(total=total_steps, initial=initial, file=self.stream, unit="step", dynamic_ncols=True)

    def update(self, rec: dict) -> None:
        """Show a record of `training.fit`: training records move the bar, the others print a line."""
        if self._bar is None:
            self._write(plain_line(rec, self.lyap_per_step))
            return
        # training and cosine records carry the index of the update just done; validations the updates done
        done = rec["step"] + (0 if "val_vpt_steps" in rec else 1)
        if done > self._bar.n:
            self._bar.update(done - self._bar.n)
        if "loss" in rec:
            self._bar.set_postfix_str(f"loss {rec['loss']:.4e}  h {rec.get('horizon')}")  # also redraws
        else:
            self._write(plain_line(rec, self.lyap_per_step))

    def message(self, text: str) -> None:
        """Print a line of text (above the bar, if any)."""
        self._write(text)

    def close(self) -> None:
        """Close the bar (its final state stays on screen); later records print plain lines."""
        if self._bar is not None:
            bar, self._bar = self._bar, None
            bar.close()

    def _write(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
