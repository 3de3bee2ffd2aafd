"""The VQ-VAE table experiments: every paper-scale configuration builds and takes one training step at a
reduced batch (so a GPU user's run cannot fail on a configuration error); every published number is listed
in a comparison; the cpu scale changes only what its label says."""

import dataclasses

import pandas as pd
import pytest
import torch
from conftest import judged

from replicate.configs import with_changes
from replicate.experiments.dq_cifar import FIXES
from replicate.experiments.wvq_vqvae import CPU_SHORTENING, CPU_TABLE2, METHODS, TABLES
from replicate.registry import EXPERIMENTS
from replicate.report.compare import compare
from replicate.results import PUBLISHED
from replicate.results import TABLES as TABLES_DIR
from replicate.runner import run_experiment, write_figures
from replicate.spec import FAILS, HOLDS, NOT_CONVERGED, TIE
from replicate.train.gan import Objective
from replicate.train.tokenizer import build_model, build_optimizer, train_step

TOKENIZER_EXPERIMENTS = [*(t.name for t in TABLES), "dq_cifar_sweep"]


def unique_models():
    """Each distinct (training configuration without epochs / data sizes) of the paper scales, once."""
    seen = {}
    for name in TOKENIZER_EXPERIMENTS:
        for config in EXPERIMENTS[name].configs("paper"):
            training = dataclasses.replace(config, batch_size=2)
            key = (training.model, training.method, training.K, training.quantizer)
            seen.setdefault(key, (name, training))
    params, large_seen = [], set()
    for name, training in seen.values():
        # a 256 px step takes ~25 s of one core: the first of each table runs by default, the others with -m slow
        large = training.model.resolution > 64
        params.append(pytest.param(name, training, marks=[pytest.mark.slow] if large and name in large_seen else []))
        large_seen |= {name} if large else set()
    return params


@pytest.mark.parametrize("name,training", unique_models(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_paper_configuration_takes_one_training_step(name, training):
    torch.manual_seed(0)
    model = build_model(training)
    optimizer = build_optimizer(model, training)
    side = training.model.resolution
    images = torch.rand(2, 3, side, side) * 2 - 1
    loss, out = train_step(model, model, optimizer, images, training, 0, True, Objective(training.gan), epoch=1)
    assert torch.isfinite(torch.tensor(loss)) and out.indices.shape == (2, *(2 * [model.config.latent_resolution]))


def test_paper_scale_uses_the_published_settings():
    table1 = EXPERIMENTS["wvq_table1"].configs("paper")
    assert {
        (c.model.resolution, c.model.channel_mult, c.epochs, c.batch_size, c.optim.lr_schedule) for c in table1
    } == {(256, (1, 1, 2, 2, 4), 30, 32, "constant")}
    table2 = EXPERIMENTS["wvq_table2"].configs("paper")
    assert {(c.epochs, c.optim.lr_schedule) for c in table2} == {(4, "cosine")}
    table6 = EXPERIMENTS["wvq_table6"].configs("paper")
    assert {(c.model.resolution, c.model.channel_mult, c.epochs, c.batch_size) for c in table6} == {
        (32, (1, 1, 2), 50, 128)
    }
    assert len(table6) == 12 and {c.K for c in table6} == {8192, 16384, 32768}
    wasserstein = next(c for c in table6 if c.method == "wasserstein")
    settings = wasserstein.quantizer_config()
    assert (settings.beta, settings.gamma, settings.codebook_lr, settings.queue_size) == (0.1, 0.5, 0.02, 65536)


def test_cpu_scale_of_table6_changes_only_what_its_label_states():
    for config in EXPERIMENTS["wvq_table6"].configs("cpu"):
        paper = next(
            c
            for c in EXPERIMENTS["wvq_table6"].configs("paper")
            if c.K == config.K and c.method in (config.method, "vanilla")
        )
        # the extra rows: training seeds (issue 36), MMD and sliced W2 (issue 14), FSQ at its d = 5 (issue 37)
        paper = with_changes(paper, {"method": config.method, "seed": config.seed, "model.d": config.model.d})
        assert with_changes(paper, CPU_SHORTENING) == config
        label = EXPERIMENTS["wvq_table6"].data(config)
        assert label == "CIFAR-10 (lossless copy), 6 epochs, ch 32"


def test_stand_in_rows_name_the_data_they_read_and_their_token_count():
    table8, table2 = (EXPERIMENTS[name].configs("cpu") for name in ("wvq_table8", "wvq_table2"))
    assert {EXPERIMENTS["wvq_table8"].data(c) for c in table8} == {
        "CelebA 10k (not FFHQ), 64 px, 3 epochs, ch 32, 5,000 evaluation images"
    }
    assert {EXPERIMENTS["wvq_table2"].data(c) for c in table2} == {
        "Tiny-ImageNet (32 px JPEG copy; ImageNet stand-in), 1 epoch, ch 32, 64 tokens an image (paper 256)"
    }
    assert {c.model.latent_resolution for c in table2} == {8}  # the 64 tokens its label states
    assert {c.model.latent_resolution for c in table8} == {16}  # 256 tokens, as the FFHQ tables
    assert {(c.method, c.K) for c in table8} == {(m, K) for m in METHODS for K in (1024, 8192)}
    assert {(c.method, c.K, c.optim.lr_schedule) for c in table2} == {(m, 16384, "cosine") for m in METHODS}


# dq_cifar_sweep is left out: a figure-only artifact, it has no published numbers to list
@pytest.mark.parametrize("name", [*(t.name for t in TABLES), "wvq_table3", "dq_generation"])
def test_every_published_number_appears_in_the_comparison_as_not_run_or_cited_without_results(name):
    experiment = EXPERIMENTS[name]
    comparison = compare(experiment, None, "paper")
    assert len(comparison) == len(pd.read_csv(PUBLISHED / experiment.published))
    methods = comparison["method"] if "method" in comparison else pd.Series("", index=comparison.index)
    cited = methods.str.endswith("_cited")
    assert set(comparison["verdict"][cited]) <= {"cited by the paper, not run"}
    assert set(comparison["verdict"][~cited]) == {"not run at this scale"}


def test_table3_cpu_rows_are_the_two_wasserstein_tokenizers_and_both_baselines():
    rows = {(c.method, bool(c.scales)) for c in EXPERIMENTS["wvq_table3"].configs("cpu")}
    assert rows == {("wasserstein", False), ("wasserstein", True), ("vanilla", False), ("ema", False)}


def test_table3_paper_rows_are_compared_at_the_published_epoch_not_the_last():
    experiment = EXPERIMENTS["wvq_table3"]
    results = pd.DataFrame({"config_key": ["a", "b"], "method": "wasserstein", "tokens": [256, 680], "K": 50000})
    results["psnr"], results["utilization"] = [25.0, 26.0], 1.0  # the rows hold the last (200th) epoch
    curves = pd.DataFrame(
        {"config_key": ["a", "a", "b"], "epoch": [160, 200, 200], "psnr": [25.19, 25.0, 26.0], "utilization": 1.0}
    )
    comparison = compare(experiment, results, "paper", curves).set_index(["tokens", "K", "metric"])
    assert comparison.loc[(256, 50000, "psnr"), "reproduced"] == 25.19  # epoch 160 (PUBLISHED_EPOCHS)
    assert comparison.loc[(256, 50000, "psnr"), "epoch"] == "160"
    assert comparison.loc[(680, 50000, "psnr"), "reproduced"] == 26.0  # its curve lacks epoch 160: the last
    assert comparison.loc[(680, 50000, "psnr"), "epoch"] == "last"


def test_table3_claims_compare_wasserstein_with_every_baseline_that_ran():
    frame = pd.DataFrame(
        {
            "method": ["wasserstein", "wasserstein", "vanilla", "ema"],
            "tokens": [256, 680, 256, 256],
            "K": 16384,
            "utilization": [0.97, 0.99, 0.40, 0.98],
            "psnr": [24.0, 25.0, 23.0, 23.5],
            "ssim": [0.70, 0.75, 0.65, 0.66],
        }
    )
    claims = {c.text: c.holds for c in EXPERIMENTS["wvq_table3"].claims(frame)}
    assert claims["K = 16384, 256 tokens: Wasserstein VQ's U is above Vanilla VQ's"] is True
    assert claims["K = 16384, 256 tokens: Wasserstein VQ's U is above EMA VQ's"] is False
    assert claims["K = 16384: multi-scale Wasserstein VQ has a higher PSNR than single-scale"] is True
    assert len(claims) == 6  # U >= 0.95 for both Wasserstein rows, PSNR, SSIM, two baselines


def test_table6_claims_rank_only_the_papers_four_methods_not_the_beyond_rows():
    frame = pd.DataFrame(
        {
            "method": [*METHODS, "sliced_wasserstein", "mmd"],
            "dataset": "cifar10",
            "K": 8192,
            "d": 64,
            "utilization": [0.01, 0.90, 0.80, 0.96, 0.99, 0.001],
            "perplexity": [20.0, 6000.0, 5000.0, 7300.0, 7800.0, 5.0],
        }
    )
    claims = {c.text.split(": ", 1)[1]: c.holds for c in EXPERIMENTS["wvq_table6"].claims(frame)}
    assert claims["Wasserstein VQ has the highest U of the four methods"] is True
    assert claims["Wasserstein VQ has the highest C of the four methods"] is True
    assert claims["Vanilla VQ has the lowest U"] is True
    frame.loc[frame["method"] == "ema", "utilization"] = 0.97
    claims = {c.text.split(": ", 1)[1]: c.holds for c in EXPERIMENTS["wvq_table6"].claims(frame)}
    assert claims["Wasserstein VQ has the highest U of the four methods"] is False


def test_vqvae_claims_count_a_tie_at_full_utilization_as_highest_but_not_a_loss():
    """At K = 1024 a baseline can use every code too: a tie at U = 1 does not beat Wasserstein VQ, a higher U does."""
    frame = pd.DataFrame(
        {
            "method": list(METHODS),
            "dataset": "celeba10k",
            "K": 1024,
            "d": 8,
            "utilization": [0.04, 1.0, 0.9, 1.0],
            "perplexity": [7.0, 877.0, 700.0, 900.0],
        }
    )
    claims = {c.text.split(": ", 1)[1]: c.holds for c in EXPERIMENTS["wvq_table8"].claims(frame)}
    assert claims["Wasserstein VQ has the highest U of the four methods"] is True
    frame.loc[frame["method"] == "wasserstein", "utilization"] = 0.999
    claims = {c.text.split(": ", 1)[1]: c.holds for c in EXPERIMENTS["wvq_table8"].claims(frame)}
    assert claims["Wasserstein VQ has the highest U of the four methods"] is False
    assert claims["Vanilla VQ has the lowest U"] is True


def test_experiment_without_cpu_scale_is_skipped_with_its_reason_and_writes_nothing(tmp_path):
    outcome = run_experiment(EXPERIMENTS["wvq_table1"], "cpu", tables=tmp_path, figures=tmp_path)
    assert outcome.status == "skipped" and "no cpu-scale version" in outcome.reason
    assert outcome.outputs == [] and not list(tmp_path.iterdir())


@pytest.mark.results
def test_cpu_table6_rows_state_every_reduction_in_their_data_label(committed_cpu_table):
    """Reads the committed tables/wvq_table6_cpu.csv: checks the results, not the code."""
    results = committed_cpu_table("wvq_table6", {"method": {"sliced_wasserstein"}})
    assert set(results["method"]) <= set(METHODS) | {"mmd", "sliced_wasserstein", "fsq"}
    assert set(results["data"]) == {"CIFAR-10 (lossless copy), 6 epochs, ch 32"}


CLAIMS = (
    "Vanilla VQ has the lowest U",
    "Wasserstein VQ has the highest U of the four methods",
    "Wasserstein VQ has the highest C of the four methods",
    "Wasserstein VQ reaches U >= 0.95",
)
# The verdict of every claim on the committed stand-ins, judged against the seed noise (report/noise.py), where it is
# not "holds": a finding (LOG.md) or a tie. The test fails, and asks for this entry to change, the day a rerun or a
# new seed changes the verdict.
VERDICTS = {
    ("wvq_table6", "Wasserstein VQ has the highest U of the four methods"): (
        TIE,
        "Table 6 cpu (CIFAR-10, K 8192, 2,340 steps): Wasserstein VQ U 0.952 (seeds 123, 124: 0.963, 0.940) vs "
        "EMA VQ 0.940 (seed 123): margin +0.012 inside the noise 0.040 (seed sigma 0.016, 1 dof); seeds 124 and "
        "125 of both methods decide it",
    ),
    ("wvq_table6", "Wasserstein VQ reaches U >= 0.95"): (
        TIE,
        "Table 6 cpu: U 0.952 over two seeds, +0.002 from the bar, inside the noise 0.023",
    ),
    ("wvq_table2", "Wasserstein VQ reaches U >= 0.95"): (
        TIE,
        "Table 2 stand-in (Tiny-ImageNet 32 px, K 16384, 3,125 steps): U 0.939 on the 10,000 test images, -0.011 "
        "from the bar inside Table 6's noise 0.033; 1,001 codes unused but only 113 used once, and U 0.944 on "
        "30,000 training images: dead codes, not a sample too small to reach them; one seed",
    ),
    ("wvq_table8", "Wasserstein VQ reaches U >= 0.95"): (
        TIE,
        "Table 8 stand-in (CelebA 10k, 64 px, 936 steps): K 8192 U 0.926 (epochs 1-3: 0.903, 0.920, 0.926, still "
        "rising), -0.024 from the bar, inside Table 6's noise 0.033; K 1024: 0.979 (paper FFHQ: 1.000); one seed",
    ),
    ("wvq_table8", "Wasserstein VQ has the highest U of the four methods"): (
        TIE,
        "Table 8 stand-in, K 1024: EMA VQ U 1.000 vs Wasserstein VQ 0.979 (paper: EMA 0.741, Wasserstein 1.000), "
        "-0.021 inside Table 6's noise 0.047; one seed. Holds at K 8192 (Wasserstein 0.926, EMA 0.790)",
    ),
    ("wvq_table8", "Wasserstein VQ has the highest C of the four methods"): (
        TIE,
        "Table 8 stand-in, K 1024: EMA VQ C 877 vs Wasserstein VQ 843 (paper: EMA 618.9), -34 inside Table 6's "
        "noise 148; one seed. Holds at K 8192 (Wasserstein 5,937, EMA 4,773)",
    ),
}


@pytest.mark.parametrize("name", ["wvq_table6", "wvq_table2", "wvq_table8"])
@pytest.mark.parametrize("claim", CLAIMS)
@pytest.mark.results
def test_cpu_vqvae_tables_give_each_claim_its_recorded_verdict(name, claim, committed_cpu_table):
    """Reads the committed tables/NAME_cpu.csv (Table 6 shortened, the Table 2 and 8 stand-ins) and judges the
    paper's claims against the seed noise: checks the results, not the code. Every codebook size where all four
    methods have landed gives the verdict recorded in VERDICTS (holds where none is recorded); the worst class
    decides where sizes differ."""
    results = committed_cpu_table(name, {"method": set(METHODS)})
    found = [c for c in judged(name, results) if c.text.endswith(claim)]
    order = (FAILS, NOT_CONVERGED, TIE, HOLDS)
    worst = min((c.verdict_class for c in found), key=order.index)
    assert found and worst == VERDICTS.get((name, claim), (HOLDS,))[0], [f"{c.text}: {c.detail}" for c in found]


@pytest.mark.results
@pytest.mark.parametrize("fix", FIXES)
@pytest.mark.parametrize("what", ["higher perplexity", "higher pairwise Euclidean distance"])
def test_cpu_dq_sweep_deferred_quantization_spreads_the_codebook_at_the_largest_K(fix, what, committed_cpu_table):
    """V2 Fig. 4's claim on the committed cpu-scale sweep (`./run_all.sh --only dq_cifar_sweep --scale cpu`):
    reads tables/dq_cifar_sweep_cpu.csv, checks the results, not the code."""
    needed = {"K": {2**6, 2**8, 2**10, 2**12, 2**13}, "schedule": {"early", *FIXES}}
    results = committed_cpu_table("dq_cifar_sweep", needed)
    text = f"{fix} quantization has {what} than early"
    claim = next(c for c in judged("dq_cifar_sweep", results) if text in c.text)
    assert "(8192)" in claim.text and claim.verdict_class == HOLDS, claim.detail  # beyond the seed noise


@pytest.mark.parametrize(
    "name, expected",
    [
        ("wvq_table6", ["wvq_table6_curves_cpu.png", "wvq_table6_scatter_cpu.png", "wvq_table6_usage_cpu.png"]),
        ("dq_cifar_sweep", ["dq_cifar_sweep_cpu.png", "dq_cifar_sweep_scatter_cpu.png"]),
        ("wvq_table2", ["wvq_table2_scatter_cpu.png", "wvq_table2_usage_cpu.png"]),  # one epoch: no curves
        ("wvq_table8", ["wvq_table8_curves_cpu.png", "wvq_table8_scatter_cpu.png", "wvq_table8_usage_cpu.png"]),
        ("dq_generation", [f"dq_generation_{kind}_cpu.png" for kind in ("diversity", "latents", "samples")]),
    ],
)
@pytest.mark.results
def test_committed_cpu_results_redraw_every_figure_including_the_feature_code_scatter(
    name, expected, tmp_path, committed_cpu_table
):
    """Reads the committed cpu-scale tables under tables/ (results, not a run) and redraws their figures."""
    committed_cpu_table(name, {})
    paths = write_figures(EXPERIMENTS[name], "cpu", TABLES_DIR, tmp_path)
    assert sorted(path.name for path in paths) == expected and all(path.stat().st_size > 0 for path in paths)


def test_reduced_data_labels_name_what_differs_from_the_paper_rows():
    """Issue 35: Table 3 cpu (batch, layout, discriminator schedule, baselines' settings), the Table 2 stand-in's
    token count, Deferred Quantization's cpu arms (K, tokens, deferred epochs, generated images)."""
    table3 = {
        c.method + str(bool(c.scales)): EXPERIMENTS["wvq_table3"].data(c)
        for c in EXPERIMENTS["wvq_table3"].configs("cpu")
    }
    assert "batch 32 (paper 4 GPUs x 16" in table3["wassersteinFalse"]
    assert "(paper (1, 1, 2, 2, 4), attention at (16,))" in table3["wassersteinTrue"]
    assert "discriminator from epoch 2 of 3 (paper 60 of 200)" in table3["wassersteinTrue"]
    assert "VQ-VAE defaults" in table3["emaFalse"] and "VQ-VAE defaults" not in table3["wassersteinFalse"]
    assert all("64 tokens an image (paper 256)" in EXPERIMENTS["wvq_table2"].data(c) for c in CPU_TABLE2)
    dq = [EXPERIMENTS["dq_generation"].data(c) for c in EXPERIMENTS["dq_generation"].configs("cpu")]
    assert all("K 8,192 (paper 16,384)" in label and "3 x 500 generated images (paper 20,000)" in label for label in dq)
    assert sum("var on 155 tokens an image (paper 680)" in label for label in dq) == 4
    assert sum("deferred 1 + 1 epochs continuous + quantized (paper 20 + 20)" in label for label in dq) == 2
