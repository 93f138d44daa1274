"""The progress of a single run: plain log lines off a terminal, a bar with ETA on one."""

import io
import re

import pytest

from sympscale.progress import ENV, Progress, plain_line

LYAP = 0.05  # Lyapunov exponent x dt_obs


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _train(step, loss=1.25e-3, h=8):
    return {"step": step, "horizon": h, "loss": loss, "grad_norm": 0.5, "wall_s": 0.1 * step}


def _val(step, h=8):
    return {"step": step, "horizon": h, "val_vpt_steps": 40.0, "val_one_step_mse": 1e-6, "val_rollout_mse": 2e-3}


COSINE = {"step": 3, "horizon": 8, "grad_cosine_full": 0.9876}
RECORDS = [_val(0), _train(0), COSINE, _train(9, loss=2.5e-4), _val(10)]


@pytest.fixture(autouse=True)
def _auto_mode(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("TERM", "xterm")


def test_plain_lines_are_the_pipeline_log_lines():
    assert [plain_line(r, LYAP) for r in RECORDS] == [
        "  val       0  h    8  VPT 40.0 steps (2.000 Lyapunov times)  one-step 1.000e-06  rollout(h) 2.000e-03",
        "  step      0  h    8  loss 1.2500e-03  |g| 5.00e-01  0.0s",
        "  step      3  cos(truncated, full-horizon gradient) 0.9876",
        "  step      9  h    8  loss 2.5000e-04  |g| 5.00e-01  0.9s",
        "  val      10  h    8  VPT 40.0 steps (2.000 Lyapunov times)  one-step 1.000e-06  rollout(h) 2.000e-03",
    ]


def test_off_a_terminal_each_record_is_one_plain_line():
    out = io.StringIO()
    with Progress(10, lyap_per_step=LYAP, stream=out) as progress:
        for rec in RECORDS:
            progress.update(rec)
        progress.message("done")
    assert out.getvalue() == "".join(f"{plain_line(r, LYAP)}\n" for r in RECORDS) + "done\n"


def test_on_a_terminal_a_bar_shows_steps_loss_horizon_and_eta():
    out = Terminal()
    progress = Progress(20, lyap_per_step=LYAP, stream=out)
    for rec in RECORDS[:4]:
        progress.update(rec)
    shown = out.getvalue().split("\r")[-1]  # the bar as last drawn
    assert re.search(r"10/20 \[\d\d:\d\d<\d\d:\d\d", shown), shown  # steps done / total [elapsed<ETA
    assert "loss 2.5000e-04" in shown and "h 8" in shown, shown
    progress.update(_val(10))
    progress.message("selected step 10")
    progress.close()
    text = out.getvalue()
    for line in (plain_line(_val(0), LYAP), plain_line(COSINE, LYAP), plain_line(_val(10), LYAP), "selected step 10"):
        assert f"{line}\n" in text  # printed whole, above the bar
    assert plain_line(_train(9), LYAP) not in text  # training records only move the bar


def test_a_resumed_run_starts_its_bar_at_the_checkpoint_and_may_stop_early():
    out = Terminal()
    progress = Progress(2000, lyap_per_step=LYAP, initial=1500, stream=out)
    assert "1500/2000" in out.getvalue()
    progress.update(_train(1599))
    progress.close()  # stopped early (patience, divergence): the bar stays where it stopped
    assert "1600/2000" in out.getvalue().split("\r")[-1]


def test_close_is_idempotent_and_later_records_print_plain_lines():
    out = Terminal()
    progress = Progress(10, lyap_per_step=LYAP, stream=out)
    progress.update(_train(0))
    progress.close()
    closed = out.getvalue()
    progress.close()
    assert out.getvalue() == closed
    progress.update(_val(10))
    assert out.getvalue() == closed + f"{plain_line(_val(10), LYAP)}\n"


@pytest.mark.parametrize("env", [{ENV: "plain"}, {"TERM": "dumb"}])
def test_plain_lines_can_be_forced_on_a_terminal(monkeypatch, env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = Terminal()
    with Progress(10, lyap_per_step=LYAP, stream=out) as progress:
        progress.update(_train(0))
    assert out.getvalue() == f"{plain_line(_train(0), LYAP)}\n"


def test_an_unknown_progress_mode_names_the_variable_and_the_valid_modes(monkeypatch):
    monkeypatch.setenv(ENV, "fancy")
    with pytest.raises(ValueError, match=rf"{ENV}='fancy'.*auto, plain"):
        Progress(10, lyap_per_step=LYAP, stream=Terminal())
