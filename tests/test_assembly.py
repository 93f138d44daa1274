"""One assembly path: the profiler sizes the program the run trains; a checkpoint is reused or reported, never lost."""

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sympscale import job, memory, training
from sympscale.train import config_dir

TINY = [
    "system=toda",
    "D=8",
    "train=smoke",
    "train.steps=40",
    "train.batch_size=4",
    "train.horizon=4",
    "train.horizon_start=2",
    "train.val_every=20",
    "train.val_horizon=20",
    "train.checkpoint_every=20",
    "data.n_trajectories=10",
    "data.n_obs=160",
    "eval.horizon=100",
    "capacity.width=8",
    "capacity.depth=2",
]


def with_(overrides, *changes):
    """`overrides` with some keys set to other values (a key is given once on a command line)."""
    keys = {c.split("=")[0] for c in changes}
    return [o for o in overrides if o.split("=")[0] not in keys] + list(changes)


def composed(overrides, cache):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="config", overrides=[*overrides, f"data.cache_dir={cache}"])


def spy_on_losses(monkeypatch) -> list:
    """Record (model, projector) of every training loss built, wherever it is built from."""
    calls = []
    real = training.make_loss

    def spy(model, std, spec, projector=None):
        calls.append((model, projector))
        return real(model, std, spec, projector)

    monkeypatch.setattr(training, "make_loss", spy)
    monkeypatch.setattr("sympscale.assembly.make_loss", spy)
    return calls


def described(model) -> tuple:
    """What makes two model objects the same program: their class and their non-array settings."""
    return (type(model).__name__, model.D, model.substeps, model.method, model.kinetic, model.width, model.depth)


def test_the_profiler_compiles_the_loss_the_run_trains_projection_included(tmp_path, monkeypatch, capsys):
    overrides = [*TINY, "model.projection=multi", "train.memory=auto"]
    calls = spy_on_losses(monkeypatch)
    assert memory.main(["--strategies", "none,remat", *overrides, f"data.cache_dir={tmp_path / 'cache'}"]) == 0
    profiled = list(calls)
    assert len(profiled) == 2 and all(p is not None for _, p in profiled), "the profiler must size the projected loss"
    assert {p.names for _, p in profiled} == {("H", "P", "I3", "I4")}

    calls.clear()
    cfg = composed(overrides, tmp_path / "cache")
    spec = job.JobSpec.from_config(cfg)
    job.execute(spec, tmp_path / "job", resolved=OmegaConf.to_container(cfg, resolve=True))
    chosen = [(m, p) for m, p in calls]
    # memory=auto compiled a strategy's loss, then training built its own: both are the run's model, projected
    assert len({id(m) for m, _ in chosen}) == 1 and all(p is not None for _, p in chosen)
    assert {described(m) for m, _ in chosen} == {described(m) for m, _ in profiled}
    assert {p.names for _, p in chosen} == {p.names for _, p in profiled}


def interrupt_after_first_checkpoint(monkeypatch):
    real = job.checkpoint.save

    class Stop(Exception):
        pass

    def save_then_stop(path, step, state, *, tag, meta=None):
        real(path, step, state, tag=tag, meta=meta)
        raise Stop(f"stopped after the checkpoint at step {step}")

    monkeypatch.setattr(job.checkpoint, "save", save_then_stop)
    return Stop


def run_once(overrides, tmp_path, echo=print):
    cfg = composed(overrides, tmp_path / "cache")
    spec = job.JobSpec.from_config(cfg)
    return job.execute(spec, tmp_path / "job", resolved=OmegaConf.to_container(cfg, resolve=True), echo=echo)


def leaves(path: Path) -> list:
    with np.load(path) as z:
        return [z[k] for k in sorted(z.files, key=lambda k: int(k.split("_")[1]))]


@pytest.mark.parametrize("model", ["symp", "gru"])
def test_an_interrupted_job_resumes_to_the_parameters_of_an_uninterrupted_one(model, tmp_path, monkeypatch):
    """The rerun continues from the checkpoint's parameters (not the initial ones) with its optimiser state."""
    overrides = [*TINY, f"model={model}", "train.val_every=0"]
    whole = run_once(overrides, tmp_path / "whole")
    stop = interrupt_after_first_checkpoint(monkeypatch)
    with pytest.raises(stop):
        run_once(overrides, tmp_path / "cut")
    monkeypatch.undo()
    said = []
    resumed = run_once(overrides, tmp_path / "cut", said.append)
    assert any("resuming from the checkpoint at step 20" in line for line in said), said
    assert resumed["train"]["resumed_from_step"] == 20
    for a, b in zip(leaves(tmp_path / "cut/job/params.npz"), leaves(tmp_path / "whole/job/params.npz"), strict=True):
        np.testing.assert_array_equal(a, b)
    assert resumed["train"]["final_loss"] == whole["train"]["final_loss"]
    assert resumed["eval"]["one_step_mse"] == whole["eval"]["one_step_mse"]


def test_a_checkpoint_survives_a_change_of_log_cadence(tmp_path, monkeypatch):
    stop = interrupt_after_first_checkpoint(monkeypatch)
    with pytest.raises(stop):
        run_once([*TINY, "model=gru", "train.log_every=5"], tmp_path)
    assert (tmp_path / "job" / "checkpoint.npz").exists()
    monkeypatch.undo()
    said = []
    metrics = run_once(
        with_(TINY, "model=gru", "train.log_every=7", "train.checkpoint_every=30"), tmp_path, said.append
    )
    assert any("resuming from the checkpoint at step 20" in line for line in said), said
    assert metrics["train"]["steps_trained"] == 40


def test_an_unusable_checkpoint_is_reported_with_its_reason_and_kept(tmp_path, monkeypatch):
    stop = interrupt_after_first_checkpoint(monkeypatch)
    with pytest.raises(stop):
        run_once([*TINY, "model=gru"], tmp_path)
    monkeypatch.undo()
    said = []
    run_once([*TINY, "model=gru", "train.lr=0.001"], tmp_path, said.append)  # another computation, same folder
    warning = [line for line in said if "cannot be used" in line]
    assert len(warning) == 1 and "train.lr: 0.003 -> 0.001" in warning[0], said
    kept = list(Path(tmp_path / "job").glob("checkpoint.other-run-*.npz"))
    assert len(kept) == 1 and kept[0].name in warning[0]
    assert not any("resuming" in line for line in said)


def test_a_checkpoint_of_other_code_is_reported_and_kept(tmp_path, monkeypatch):
    from sympscale import provenance

    stop = interrupt_after_first_checkpoint(monkeypatch)
    with pytest.raises(stop):
        run_once([*TINY, "model=gru"], tmp_path)
    monkeypatch.undo()
    monkeypatch.setattr(provenance, "source_digest", lambda: "edited-source")
    said = []
    metrics = run_once([*TINY, "model=gru"], tmp_path, said.append)
    warning = [line for line in said if "cannot be used" in line]
    assert len(warning) == 1 and "the code changed" in warning[0] and "source edited-source" in warning[0], said
    assert metrics["code"]["source_digest"] == "edited-source" and metrics["train"]["resumed_from_step"] == 0
