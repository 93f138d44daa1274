"""Run identity: settings that cannot change a result never split runs, and a finished run is never overwritten."""

import json

import pytest
import yaml

from sympscale import identity
from sympscale.train import config_dir

CFG = {
    "system": {"name": "fput", "beta": 1.0},
    "D": 8,
    "seed": 1,
    "name": "sweep",
    "if_changed": "stop",
    "data": {"n_obs": 160, "cache_dir": "a"},
    "train": {"lr": 1e-3, "log_every": 10, "checkpoint_every": 50, "steps": 100},
    "_hydra": {"overrides": ["seed=1"]},
}


def _with(path: str, value):
    cfg = json.loads(json.dumps(CFG))
    *parents, leaf = path.split(".")
    node = cfg
    for p in parents:
        node = node[p]
    node[leaf] = value
    return cfg


@pytest.mark.parametrize("key", identity.NON_COMPUTATIONAL)
def test_reporting_settings_do_not_change_the_identity(key):
    assert identity.digest(_with(key, "something else")) == identity.digest(CFG)


@pytest.mark.parametrize("key, value", [("train.lr", 2e-3), ("seed", 2), ("system.beta", 0.5), ("train.steps", 99)])
def test_computational_settings_do(key, value):
    changed = _with(key, value)
    assert identity.digest(changed) != identity.digest(CFG)
    assert identity.differences(CFG, changed) == [f"{key}: {CFG_value(key)!r} -> {value!r}"]


def CFG_value(key):
    node = CFG
    for part in key.split("."):
        node = node[part]
    return node


def test_folder_names_exclude_exactly_the_non_computational_keys():
    conf = yaml.safe_load(open(f"{config_dir()}/config.yaml"))
    assert set(conf["hydra"]["job"]["config"]["override_dirname"]["exclude_keys"]) == set(identity.NON_COMPUTATIONAL)


def _finished(folder, cfg):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "metrics.json").write_text('{"status": "done"}')


def test_claim_refuses_a_different_finished_run_and_moves_it_aside_on_request(tmp_path):
    job = tmp_path / "job"
    _finished(job, CFG)
    assert identity.claim(job, _with("train.log_every", 1)) is None  # same computation: nothing to do
    with pytest.raises(identity.FolderConflict, match=r"train\.lr: 0\.001 -> 0\.002"):
        identity.claim(job, _with("train.lr", 2e-3))
    assert json.loads((job / "config.json").read_text()) == CFG  # untouched
    aside, why = identity.claim(job, _with("train.lr", 2e-3), "move_aside")
    assert (
        aside.parent == job
        and aside.name.startswith("replaced-")
        and "train.lr" in why
        and json.loads((aside / "config.json").read_text()) == CFG
    )
    assert not (job / "metrics.json").exists() and (aside / "metrics.json").exists()


def test_an_unfinished_folder_is_not_a_conflict(tmp_path):
    (tmp_path / "running").mkdir()
    (tmp_path / "running" / "config.json").write_text(json.dumps(CFG))
    assert identity.claim(tmp_path / "running", _with("train.lr", 2e-3)) is None


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_a_finished_run_whose_config_is_damaged_moves_aside_by_itself(tmp_path, damage):
    """It may be any computation: kept whole in a subfolder that says why, and the job runs (issue 28)."""
    job = tmp_path / "job"
    _finished(job, CFG)
    text = (job / "config.json").read_bytes()
    damaged = text[: len(text) // 2] if damage == "truncated" else text.replace(b"{", b"\xff", 1)
    (job / "config.json").write_bytes(damaged)
    aside, why = identity.claim(job, CFG)  # if_changed=stop: still moved, nothing is overwritten
    assert aside.name.startswith("damaged-config-") and "cannot be read" in why
    assert (aside / "config.json").read_bytes() == damaged and (aside / "metrics.json").exists()
    assert not (job / "metrics.json").exists() and identity.claim(job, CFG) is None


def test_preflight_refuses_folders_under_files_and_names_through_links(tmp_path, monkeypatch):
    import os

    from omegaconf import OmegaConf

    from sympscale.preflight import folder_errors, name_error

    (tmp_path / "afile").write_text("")
    (line,) = folder_errors(tmp_path / "afile" / "job", OmegaConf.create({"if_changed": "stop"}))
    assert "is a file" in line and str(tmp_path / "afile") in line
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "outputs" / "link")
    assert "symbolic link" in name_error("link/x")
    assert name_error("plain/x") is None and "'..'" in name_error("../x")


def test_analysis_never_blocks_on_a_named_pipe(tmp_path):
    import os

    from sympscale.launcher.jsonfile import read_json

    os.mkfifo(tmp_path / "metrics.json")
    assert read_json(tmp_path / "metrics.json") == (None, "not a regular file")
