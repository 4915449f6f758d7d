"""From config to jobs: selection, the MNIST switch, and messages that name the problem and the fix."""

import pytest
import yaml

from tests.paths import ROOT
from workflow.lib.plan import PlanError, plan_from_config


def config(**over) -> dict:
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg.update(over)
    return cfg


def test_default_config_plans_every_experiment_on_every_backend():
    plan = plan_from_config(config(), ROOT)
    assert "mnist10k-mlp" in plan.experiments and "mnist-mlp" not in plan.experiments
    assert len(plan.jobs) == len(plan.experiments) * len(plan.backends)
    assert {d for _, _, d in plan.jobs} == {"cpu"}
    assert "mnist10k" in plan.datasets and "hotels" in plan.datasets


def test_full_mnist_without_files_skips_its_experiment_with_a_clear_note(tmp_path):
    plan = plan_from_config(config(full_mnist=True, mnist_dir=str(tmp_path)), ROOT)
    assert "mnist-mlp" not in plan.experiments
    note = " ".join(plan.notes)
    assert "skipping mnist-mlp" in note and "train-images-idx3-ubyte.gz" in note and "full_mnist: false" in note


def test_full_mnist_with_files_replaces_the_stand_in(tmp_path):
    from datasets.mnist import FILES

    for name in FILES:  # presence is what the plan checks; the loader md5-verifies them when built
        (tmp_path / name).write_bytes(b"")
    plan = plan_from_config(config(full_mnist=True, mnist_dir=str(tmp_path)), ROOT)
    assert "mnist-mlp" in plan.experiments and "mnist10k-mlp" not in plan.experiments


@pytest.mark.parametrize(
    "over, message",
    [
        ({"backends": ["numpy", "mxnet"]}, "unknown backend"),
        ({"experiments": ["nope"]}, "unknown experiment"),
        ({"repeats": "three"}, "repeats"),
        ({"typo_key": 1}, "typo_key"),
    ],
)
def test_bad_config_is_a_plan_error_naming_the_key(over, message):
    with pytest.raises(PlanError, match=message):
        plan_from_config(config(**over), ROOT)


def test_full_mnist_directory_from_the_environment_counts_like_the_loaders(tmp_path, monkeypatch):
    """The plan judges the files as datasets.mnist will: mnist_dir, else FWBENCH_MNIST_DIR."""
    from datasets.mnist import DIR_ENV, FILES

    for name in FILES:
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    plan = plan_from_config(config(full_mnist=True, mnist_dir=None), ROOT)
    assert "mnist-mlp" in plan.experiments
    monkeypatch.delenv(DIR_ENV)
    plan = plan_from_config(config(full_mnist=True, mnist_dir=None), ROOT)
    assert "mnist-mlp" not in plan.experiments and DIR_ENV in " ".join(plan.notes)
