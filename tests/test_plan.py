"""From config to jobs: selection, the MNIST switch, and messages that name the problem and the fix."""

import pytest
import yaml

from tests.paths import ROOT
from workflow.lib.plan import PlanError, plan_from_config


def config(**over) -> dict:
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg.update(over)
    return cfg


def test_default_config_plans_every_experiment_on_every_backend_and_the_peers_on_theirs():
    cfg = config()
    plan = plan_from_config(cfg, ROOT)
    assert "mnist10k-mlp" in plan.experiments and "mnist-mlp" not in plan.experiments
    peers = cfg["peers"]
    assert peers["backends"] and set(plan.backends) == set(cfg["backends"]) | set(peers["backends"])
    expected = {(e, b) for e in plan.experiments for b in cfg["backends"]}
    expected |= {(e, b) for e in peers["experiments"] for b in peers["backends"]}
    assert {(e, b) for e, b, _ in plan.jobs} == expected and len(plan.jobs) == len(expected)
    assert {d for _, _, d in plan.jobs} == {"cpu"}
    assert "mnist10k" in plan.datasets and "hotels" in plan.datasets


def test_peers_name_catalogue_experiments_and_skip_the_ones_not_run():
    with pytest.raises(PlanError, match="peers.experiments .'no-such'. are not in the catalogue"):
        plan_from_config(config(peers={"backends": ["keras-jax"], "experiments": ["no-such"]}), ROOT)
    plan = plan_from_config(config(experiments=["moons-mlp"]), ROOT)
    assert any("mnist10k-mlp" in n and "not run" in n for n in plan.notes)
    assert ("moons-mlp", "keras-jax", "cpu") in plan.jobs


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
