"""Hydra's own launcher conformance suites, run against `local_devices` as Hydra's official plugins do."""

from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite
from pytest import mark

from hydra_plugins.sympscale_launcher.local_devices import LocalDevicesLauncher

# CPU slots so the suites run anywhere; the progress line would only add noise
FLAGS = ["hydra.launcher.platform=cpu", "hydra.launcher.cpu_workers=2", "hydra.launcher.progress_every=600"]


def test_discovery() -> None:
    assert LocalDevicesLauncher.__name__ in [x.__name__ for x in Plugins.instance().discover(Launcher)]


@mark.parametrize("launcher_name, overrides", [("local_devices", FLAGS)])
class TestLocalDevicesLauncher(LauncherTestSuite):
    pass


@mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [({}, ["-m", "hydra/launcher=local_devices", *FLAGS])],
)
class TestLocalDevicesLauncherIntegration(IntegrationTestSuite):
    pass
