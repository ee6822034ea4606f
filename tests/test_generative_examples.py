"""The generative examples run end to end on the embedded digits (one or two epochs: this
checks that they run and write their pictures, not what they learn; the learned figures
are in benchmarks/RESULTS.md, from MNIST)."""

import importlib
import os

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")
pytestmark = pytest.mark.slow  # matplotlib (the examples extra) is not in CI's test extra


@pytest.fixture
def example(monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.syspath_prepend(EXAMPLES)
    return importlib.import_module


def test_autoencoder_example(example, tmp_path):
    pytest.importorskip("sklearn")
    results = example("autoencoder").main(["--epochs", "2", "--out", str(tmp_path)])
    assert set(results) >= {"dense", "conv", "denoising", "codes_accuracy", "psnr"}
    assert results["codes_accuracy"] > 0.3  # ten classes: chance is 0.1
    assert (tmp_path / "reconstructions.png").stat().st_size > 0


def test_vae_example(example, tmp_path):
    history, times = example("vae").main(["--epochs", "2", "--out", str(tmp_path)])
    assert history[-1]["total_loss"] < history[0]["total_loss"]
    assert (tmp_path / "vae_latent_grid.png").exists()
    assert (tmp_path / "vae_latent_means.png").exists()


@pytest.mark.parametrize("recipe", ["train_step", "classic"])
def test_gan_example(example, tmp_path, recipe):
    verdict, times = example("gan").main(["--recipe", recipe, "--epochs", "1", "--small",
                                          "--judge-epochs", "1", "--out", str(tmp_path)])
    assert len(times) == 1 and abs(sum(verdict["class_shares"]) - 1.0) < 1e-9
    assert (tmp_path / f"{recipe}_epoch1.png").exists()


def test_conditional_gan_example(example, tmp_path):
    verdict, _ = example("conditional_gan").main(["--epochs", "1", "--judge-epochs", "1",
                                                  "--out", str(tmp_path)])
    assert 0.0 <= verdict["agreement"] <= 1.0
    assert (tmp_path / "conditional_epoch1.png").exists()
