"""The dependencies between modules that the code's layout promises (README, 'How the code is organised')."""
import subprocess
import sys

import pytest

from common import UserError
from config import Config
from conftest import REPO


@pytest.mark.parametrize("module,absent", [
    ("valid", "training"),  # evaluation needs the configuration's flags, not the engine
    ("models", "data"),  # the networks read no dataset
    ("data", "download_data"),  # the downloader uses the parsers, never the other way round
    ("config", "training"),
])
def test_a_module_does_not_import_what_it_does_not_need(module, absent):
    code = f"import sys, {module}; print({absent!r} in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_a_configuration_saved_with_the_old_name_of_the_method_setting_still_loads():
    saved = {"source": "mnist", "target": "mnist_m", "mode": "source-only", "epochs": 3}
    cfg = Config.from_saved(saved, "config.json")
    assert cfg.method == "source-only" and cfg.epochs == 3
    with pytest.raises(UserError, match="config.json does not hold the settings"):  # an unknown method, as before
        Config.from_saved({**saved, "mode": "dirt"}, "config.json")
