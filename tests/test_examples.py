"""The examples/ scripts run as documented: the quantizers used as a library in an autoencoder of one's own."""

import importlib.util

from replicate.results import ROOT


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wasserstein_autoencoder_example_learns_and_reports_codebook_utilization(capsys):
    """100 of the example's 300 steps: the held-out reconstruction error falls by half, the codebook's utilization is
    reported (as a fraction of the K codes) and grows from its collapsed start (official init N(0, 0.01^2))."""
    example = load_example("wasserstein_autoencoder")
    result = example.main(steps=100, log_every=50)
    before, after = result["before"], result["after"]
    assert after["reconstruction_mse"] < 0.5 * before["reconstruction_mse"]
    assert 0 < before["utilization"] < after["utilization"] <= 1
    printed = capsys.readouterr().out
    assert "utilization" in printed and "wasserstein" in printed
