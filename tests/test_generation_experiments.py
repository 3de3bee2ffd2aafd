"""dq_generation and wvq_generation: the arms differ only where they should, the paper scale is the paper's stated
configuration, the claims read their numbers with the right sign, an arm runs end to end at smoke scale, the proxy
network is trained once per dataset, the ImageNet-100 / ODIR loaders split as the paper and say what is missing, and
the committed cpu results hold V2's claims or carry the finding that they do not."""

import dataclasses

import pandas as pd
import pytest
import torch

from replicate.data import images
from replicate.errors import MissingDataError
from replicate.experiments import generation, wvq_vqvae
from replicate.metrics.proxy import ProxyClassifierConfig
from replicate.registry import EXPERIMENTS
from replicate.report.plotting import METHOD_NAMES
from replicate.results import Workspace, config_id
from replicate.train import evaluate_generator
from replicate.train import generator as generator_training
from replicate.train.generator import generator_folders

DQ, WVQ = EXPERIMENTS["dq_generation"], EXPERIMENTS["wvq_generation"]


def test_early_and_deferred_arms_differ_only_in_the_tokenizer_schedule():
    for scale in ("paper", "cpu", "smoke"):
        by_arm = {(c.tokenizer.dataset, c.generator, c.tokenizer.schedule): c for c in DQ.configs(scale)}
        for (dataset, generator, schedule), config in by_arm.items():
            if schedule != "early":
                continue
            deferred = by_arm[dataset, generator, "deferred"]
            warmup = deferred.tokenizer.warmup_epochs
            assert (
                dataclasses.replace(config.tokenizer, schedule="deferred", warmup_epochs=warmup) == deferred.tokenizer
            )
            assert dataclasses.replace(config, tokenizer=deferred.tokenizer) == deferred  # the same generator budget


def test_paper_scale_is_the_stated_configuration():
    configs = DQ.configs("paper")
    assert {(c.tokenizer.dataset, c.generator) for c in configs} == {
        ("imagenet100", "maskgit"),
        ("imagenet100", "var"),
        ("odir", "var"),
    }
    for c in configs:
        t = c.tokenizer
        assert (t.model.resolution, t.K, t.model.channels, t.model.latent_resolution) == (128, 16384, 64, 16)
        assert t.gan.perceptual_weight > 0 and t.gan.disc_weight == 0  # a VQ-VAE with the perceptual term, no GAN
        assert c.depth == {"maskgit": 24, "var": 16}[c.generator]
        assert bool(t.scales) == (c.generator == "var")


def test_cpu_scale_is_labelled_and_reuses_the_table6_tokenizers():
    labels = {DQ.data(c) for c in DQ.configs("cpu")}
    assert all("no perceptual loss" in label for label in labels)
    assert any(label.startswith("CIFAR-10 (lossless copy)") for label in labels)
    assert any(label.startswith("ODIR subset") for label in labels)
    assert [c.tokenizer for c in WVQ.configs("cpu")] == wvq_vqvae.CPU_TABLE6
    assert len({(c.epochs, c.batch_size, c.depth, c.width) for c in WVQ.configs("cpu")}) == 1


def _rows(metric_by_arm: dict[str, float], column: str) -> pd.DataFrame:
    rows = []
    for arm, value in metric_by_arm.items():
        rows.append(
            {
                "tokenizer_dataset": "cifar10-lossless",
                "generator": "maskgit",
                "tokenizer_schedule": arm if column == "tokenizer_schedule" else "random",
                "tokenizer_method": arm if column == "tokenizer_method" else "vanilla",
                "pixel_distance": value,
                "pixel_distance_std": 0.1,
                "pixel_distance_real": 20.0,
                "utilization": value / 100,
                "proxy_frechet": 1 / value,
            }
        )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("deferred,holds", [(11.0, True), (9.0, False)])
def test_the_diversity_claim_follows_the_sign_of_the_difference(deferred, holds):
    claims = DQ.claims(_rows({"early": 10.0, "deferred": deferred}, "tokenizer_schedule"))
    (claim,) = [c for c in claims if "pixel-distance" in c.text]
    assert claim.holds is holds and f"{deferred - 10:+.3f}" in claim.detail


def test_the_open_question_hypotheses_compare_wasserstein_with_each_baseline():
    results = _rows({"wasserstein": 12.0, "vanilla": 5.0, "ema": 13.0}, "tokenizer_method")
    answers = {c.text: c.holds for c in WVQ.claims(results)}
    assert answers["MaskGIT on Wasserstein VQ's tokens gives a higher pixel distance than on Vanilla VQ's"] is True
    assert answers["MaskGIT on Wasserstein VQ's tokens gives a higher pixel distance than on EMA VQ's"] is False
    assert answers["the tokenizer with the highest codebook utilization gives the most diverse samples"] is True


def test_a_smoke_arm_trains_evaluates_gives_every_extra_table_and_is_re_evaluated_without_retraining(
    tmp_path, monkeypatch
):
    workspace = Workspace(torch.device("cpu"), tmp_path)
    config = DQ.configs("smoke")[0]
    result = generation.run(config, workspace)
    assert {"perplexity", "code_dist_cosine", "pixel_distance", "pixel_distance_std", "proxy_accuracy"} <= set(
        result.metrics
    )
    assert result.metrics["pixel_pairs"] == config.max_pairs
    images_per_class = generation.SAMPLE_GRID_PER_CLASS
    assert len(result.extra_tables["images"]) % images_per_class == 0
    assert {p["kind"] for p in result.extra_tables["points"]} == {"real", "generated"}
    assert len(result.extra_tables["curves"]) == config.epochs
    # another evaluation of the same trained generator: the same run folder, no training step
    other = dataclasses.replace(config, max_pairs=10, sample_seeds=(5,))
    assert generator_folders(other, workspace) == generator_folders(config, workspace)
    monkeypatch.setattr(generator_training, "train_step", lambda *args: pytest.fail("retrained"))
    again = generation.run(other, workspace)
    assert again.metrics["generator_train_loss"] == result.metrics["generator_train_loss"]
    assert pd.isna(again.metrics["pixel_distance_std"])  # one sampling seed: no spread


def test_the_proxy_network_is_trained_once_per_dataset_and_read_back(tmp_path, monkeypatch):
    config = dataclasses.replace(DQ.configs("smoke")[0], proxy_network=ProxyClassifierConfig(3, width=8, epochs=1))
    _, accuracy = evaluate_generator.trained_proxy(config, "cpu", tmp_path)
    monkeypatch.setattr(evaluate_generator, "train_proxy", lambda *args: pytest.fail("trained twice"))
    _, again = evaluate_generator.trained_proxy(config, "cpu", tmp_path)
    assert again == accuracy and 0 <= accuracy <= 1


def test_imagenet100_holds_out_the_paper_test_set_from_the_training_images(tmp_path, monkeypatch):
    for label in ("n01", "n02"):
        (tmp_path / "train" / label).mkdir(parents=True)
        for index in range(10):
            (tmp_path / "train" / label / f"{index}.png").write_bytes(b"")
    monkeypatch.setattr(images, "IMAGENET100_HELD_OUT", (5, 3))
    train, classes = images.DATASETS["imagenet100"]("train", tmp_path, tmp_path)
    test, _ = images.DATASETS["imagenet100"]("test", tmp_path, tmp_path)
    assert classes == ["n01", "n02"] and (len(train.files), len(test.files)) == (12, 5)
    assert not set(train.files) & set(test.files)


@pytest.mark.parametrize("name,variable", [("imagenet100", "VQ_IMAGENET100_DIR"), ("odir", "VQ_ODIR_DIR")])
def test_missing_paper_datasets_say_what_to_provide(name, variable, tmp_path, monkeypatch):
    monkeypatch.delenv(variable, raising=False)
    with pytest.raises(MissingDataError, match=variable):
        images.DATASETS[name]("train", None, tmp_path)


def test_odir_subset_keeps_its_split_of_70_and_10_percent():
    files = images.ImageFiles([f"{i}.jpg" for i in range(1673)], [0] * 1673)
    train, test = images._odir_split(files, "train"), images._odir_split(files, "test")
    assert (len(train.files), len(test.files)) == (1171, 167) and not set(train.files) & set(test.files)


DQ_CLAIMS = (
    "deferred quantization gives a higher pixel-distance diversity than early",
    "the deferred tokenizer has a higher codebook perplexity than the early one",
    "the deferred tokenizer has a higher pairwise cosine distance of the codes than the early one",
    "the deferred tokenizer has a lower reconstruction MSE than the early one",
)
DQ_ARMS = sorted({(c.tokenizer.dataset, c.generator) for c in DQ.configs("cpu")})  # CIFAR-10 x 2 generators, ODIR
# A claim of V2 that the committed cpu run does not hold is a finding (LOG.md, REPORT.md), kept as a strict xfail:
# the test fails again, and asks for this entry to go, the day a rerun holds it.
DQ_FINDINGS = {
    ("cifar10-lossless", "maskgit", DQ_CLAIMS[0]): (
        "CIFAR-10 32 px, K 8192, MaskGIT depth 4 width 256, 6 epochs, one training seed per arm: pixel distance "
        "deferred 14.98 +- 0.04 vs early 17.10 +- 0.06 (3 sampling seeds x 500 samples, 20,000 pairs; real 19.44): "
        "-12.4%, ~35 sampling-seed stds; deferred samples have less contrast (per-image std 0.162 vs 0.211)"
    ),
    ("cifar10-lossless", "maskgit", DQ_CLAIMS[2]): (
        "CIFAR-10 32 px, K 8192, 2 tokenizer epochs: mean pairwise cosine distance of the codes deferred 0.663 vs "
        "early 0.837 (paper ImageNet-100: 0.94 vs 0.67), while deferred's perplexity is higher (4,201 vs 1,688)"
    ),
    ("cifar10-lossless", "var", DQ_CLAIMS[1]): (
        "CIFAR-10 32 px, VAR's own multi-scale quantizer on scales 1-8 (155 tokens), K 8192, 2 tokenizer epochs "
        "(deferred: 1 continuous, k-means on every scale's residuals, 1 quantized), one training seed per arm: "
        "perplexity deferred 40.7 vs early 137.6, U 0.176 vs 0.339 (paper ImageNet-100 VAR: 7,045 vs 2,802)"
    ),
    ("cifar10-lossless", "var", DQ_CLAIMS[3]): (
        "VAR's quantizer, 2 tokenizer epochs: MSE deferred 0.0767 vs early 0.0730 (one quantized epoch against two)"
    ),
}


@pytest.mark.parametrize(
    "dataset, generator, claim",
    [
        pytest.param(*arm, claim, marks=[pytest.mark.xfail(strict=True, reason=DQ_FINDINGS[(*arm, claim)])])
        if (*arm, claim) in DQ_FINDINGS
        else (*arm, claim)
        for arm in DQ_ARMS
        for claim in DQ_CLAIMS
    ],
)
@pytest.mark.results
def test_cpu_generation_deferred_quantization_holds_the_papers_claim(dataset, generator, claim, committed_cpu_table):
    """Reads the committed tables/dq_generation_cpu.csv (`./run_all.sh --only dq_generation --scale cpu`): V2
    Tables 1-4's claims on each dataset and generator whose early and deferred arms have both landed."""
    where = {"tokenizer_dataset": dataset, "generator": generator}
    results = committed_cpu_table("dq_generation", {"tokenizer_schedule": {"early", "deferred"}}, where)
    (found,) = [c for c in DQ.claims(results) if c.text.endswith(claim)]
    assert found.holds, f"{found.text}: {found.detail}"


@pytest.mark.parametrize("experiment", [DQ, WVQ], ids=lambda e: e.name)
@pytest.mark.results
def test_cpu_generation_rows_carry_the_sampling_seed_spread_and_the_real_image_reference(
    experiment, committed_cpu_table
):
    results = committed_cpu_table(experiment.name, {})
    configs = {config_id(c): c for c in experiment.configs("cpu")}
    for _, row in results.iterrows():
        config = configs[row["config_id"]]
        assert row["pixel_pairs"] == config.max_pairs and len(config.sample_seeds) > 1
        assert row["pixel_distance_std"] > 0 and row["pixel_distance_real"] > 0 and row["pixel_distance"] > 0


WVQ_BASELINES = [METHOD_NAMES[m] for m in ("vanilla", "ema", "online")]


@pytest.mark.parametrize(
    "hypothesis",
    [f"higher pixel distance than on {name}'s" for name in WVQ_BASELINES]
    + [f"lower proxy Fréchet distance than on {name}'s" for name in WVQ_BASELINES]
    + ["the highest codebook utilization gives the most diverse samples"],
)
@pytest.mark.results
def test_cpu_open_question_3_hypotheses_hold_on_the_committed_arms(hypothesis, committed_cpu_table):
    """Reads the committed tables/wvq_generation_cpu.csv (`./run_all.sh --only wvq_generation --scale cpu`): each
    hypothesis of Wasserstein VQ's open question 3 as answered there (all four arms, 2026-11-27: every one held; a
    rerun that answers one the other way fails here and is a finding to report, not a test to loosen)."""
    results = committed_cpu_table("wvq_generation", {"tokenizer_method": {"wasserstein", "vanilla", "ema", "online"}})
    (found,) = [c for c in WVQ.claims(results) if hypothesis in c.text]
    assert found.holds, f"{found.text}: {found.detail}"


def test_relative_diversity_claims_read_each_reading_against_its_ceiling_and_skip_rows_without_one():
    from replicate.experiments.generation import relative_diversity_claims

    a = pd.DataFrame({"pixel_distance_rel": [0.90, 0.92], "pixel_mad255_rel": [0.80, 0.85]})
    b = pd.DataFrame({"pixel_distance_rel": [0.70, 0.72], "pixel_mad255_rel": [0.90, 0.91]})
    found = relative_diversity_claims("A over B, {reading}", a, b)
    assert [(c.text, c.holds) for c in found] == [
        ("A over B, pixel-distance (L2, [0, 1])", True),
        ("A over B, pixel-MAD (0-255)", False),  # the readings can disagree: each is its own claim
    ]
    assert found[0].margin.metric == "pixel_distance_rel" and found[0].margin.counts == (2, 2)
    assert relative_diversity_claims("x {reading}", a.drop(columns="pixel_mad255_rel"), b)[0].text.endswith("[0, 1])")
    assert relative_diversity_claims("x {reading}", pd.DataFrame({"pixel_distance": [1.0]}), a) == []
