"""Hydra's own launcher conformance suites, run against `local_devices` as Hydra's official plugins do."""

from importlib.metadata import entry_points

from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite
from pytest import mark, skip

from hydra_plugins.sympscale_launcher.local_devices import LocalDevicesLauncher
from hydra_plugins.sympscale_sweeper.sympscale_sweeper import SympScaleSweeper

# CPU slots so the suites run anywhere; the progress line would only add noise
FLAGS = ["hydra.launcher.platform=cpu", "hydra.launcher.cpu_workers=2", "hydra.launcher.progress_every=600"]

# Scan the plugins before any test snapshots Hydra's singletons (`hydra_restore_singletons`): Hydra 1.4 imports
# plugin modules once (1.3 re-executed them on every rescan), so the schemas they store (`hydra/sweeper/basic`, ...)
# must already be in the snapshot that each test's teardown restores.
Plugins.instance()


def test_discovery() -> None:
    assert LocalDevicesLauncher.__name__ in [x.__name__ for x in Plugins.instance().discover(Launcher)]
    assert SympScaleSweeper.__name__ in [x.__name__ for x in Plugins.instance().discover(Sweeper)]


def test_entry_points_name_the_plugin_classes() -> None:
    """Hydra 1.4 discovers plugins through the `hydra.plugins` entry-point group (1.3 scans the namespace)."""
    ours = {ep.name: ep.load() for ep in entry_points(group="hydra.plugins") if ep.dist and ep.dist.name == "sympscale"}

    def name(cls):  # Hydra 1.3's scan executes plugin modules again: compare classes by name
        return f"{cls.__module__}.{cls.__qualname__}"

    assert name(ours["sympscale_local_devices"]) == name(LocalDevicesLauncher)
    assert name(ours["sympscale_sweeper"]) == name(SympScaleSweeper)


def test_hydra_14_registers_the_plugins_through_their_entry_points() -> None:
    import hydra

    if tuple(int(p) for p in hydra.__version__.split(".")[:2]) < (1, 4):
        skip("Hydra 1.3 scans the hydra_plugins namespace only")
    loaded = Plugins.instance().get_stats().modules_import_time
    assert {"entry point: sympscale_local_devices", "entry point: sympscale_sweeper"} <= set(loaded)


@mark.parametrize("launcher_name, overrides", [("local_devices", FLAGS)])
class TestLocalDevicesLauncher(LauncherTestSuite):
    pass


@mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [({}, ["-m", "hydra/launcher=local_devices", *FLAGS])],
)
class TestLocalDevicesLauncherIntegration(IntegrationTestSuite):
    pass
