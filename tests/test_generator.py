"""Generator training at smoke scale on generated shapes: tokens of a trained tokenizer are extracted and cached,
MaskGIT and VAR train and resume to the same history, two torchrun processes keep identical generators, generation
decodes deterministic in-range images, and invalid configurations fail with ConfigError."""

import dataclasses
import math

import pandas as pd
import pytest
import torch
from conftest import two_rank_parameters

from replicate import distributed
from replicate.configs import Optimisation, TokenizerTraining, VQVAEConfig, smoke_scale
from replicate.errors import ConfigError
from replicate.experiments.generation import METRICS, METRICS_ISSUE36
from replicate.experiments.wvq_vqvae import TOKENIZER_METRICS
from replicate.metrics.proxy import ProxyClassifier, ProxyClassifierConfig
from replicate.quantize.multiscale import tokens as token_count
from replicate.results import Workspace
from replicate.train import checkpoint, generator
from replicate.train.evaluate_generator import (
    MASK_RATIO,
    balanced_labels,
    evaluate_generator,
    generator_validity,
    held_out_nll,
    unigram_entropy,
)
from replicate.train.generator import (
    GeneratorFolders,
    GeneratorTraining,
    extract_tokens,
    generate,
    generator_folders,
    token_usage,
    train_generator,
)
from replicate.train.tokenizer import load_trained, train_tokenizer

SINGLE = smoke_scale(TokenizerTraining("shapes", "wasserstein", 16, VQVAEConfig(32)))
MULTI = dataclasses.replace(SINGLE, scales=(1, 2, 4, 8, 16))


def generator_config(kind: str, **changes) -> GeneratorTraining:
    settings = dict(
        tokenizer=SINGLE if kind == "maskgit" else MULTI,
        generator=kind,
        depth=1,
        width=32,
        heads=2,
        epochs=2,
        batch_size=16,
        optim=Optimisation(3e-3, (0.9, 0.95), grad_clip=1.0, lr_schedule="warmup", warmup_iters=2),
        checkpoint_every=3,
    )
    if kind == "var":  # no guidance: a one-layer model sampled as is
        settings["sampling"] = (("guidance_scale", 0.0),)
    return GeneratorTraining(**{**settings, **changes})


def folders_with_a_tokenizer(config: GeneratorTraining, runs) -> GeneratorFolders:
    """The run folders of a generator under `runs`, its tokenizer trained (a finished one is read back)."""
    folders = generator_folders(config, Workspace(torch.device("cpu"), runs))
    train_tokenizer(config.tokenizer, folders.tokenizer, progress=False)
    return folders


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run folders in a temporary folder (each smoke tokenizer trains once for the whole module)."""
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def trained(runs):
    """Each generator trained once, uninterrupted: kind -> (its run folders, history)."""
    found = {}
    for kind in ("maskgit", "var"):
        folders = folders_with_a_tokenizer(generator_config(kind), runs)
        found[kind] = (folders, train_generator(generator_config(kind), folders, progress=False))
    return found


@pytest.mark.parametrize("kind", ["maskgit", "var"])
def test_extracted_tokens_cover_every_training_image_and_are_read_back_from_the_cache(trained, kind, monkeypatch):
    folders, _ = trained[kind]
    config = generator_config(kind)
    data = extract_tokens(config, folders, "cpu")
    length = 256 if kind == "maskgit" else token_count(MULTI.scales)
    assert data.tokens.shape == (SINGLE.max_train_images, length) and data.tokens.dtype == torch.long
    assert 0 <= data.tokens.min() and data.tokens.max() < SINGLE.K
    assert data.labels.shape == (SINGLE.max_train_images,) and data.num_classes == len(data.classes) == 3

    def fail(*args, **kwargs):
        raise AssertionError("the cached tokens were recomputed")

    monkeypatch.setattr(generator, "load_trained", fail)
    assert torch.equal(extract_tokens(config, folders, "cpu").tokens, data.tokens)


def test_tokens_are_recomputed_when_the_cache_belongs_to_another_tokenizer(trained, tmp_path):
    folders, _ = trained["maskgit"]
    cache = torch.load(folders.generator / "tokens.pt", weights_only=False)
    checkpoint.save_checkpoint(
        tmp_path / "tokens.pt", {**cache, "tokenizer_id": "another", "tokens": cache["tokens"] * 0}
    )
    elsewhere = dataclasses.replace(folders, generator=tmp_path)
    assert torch.equal(extract_tokens(generator_config("maskgit"), elsewhere, "cpu").tokens, cache["tokens"])


def test_a_finished_run_ignores_the_tokenizer_run_options(trained):
    folders, history = trained["maskgit"]
    other = dataclasses.replace(SINGLE, num_workers=1, checkpoint_every=7, data_root="elsewhere")
    again = train_generator(generator_config("maskgit", tokenizer=other, checkpoint_every=5), folders, progress=False)
    pd.testing.assert_frame_equal(history, again)


def test_a_run_counts_its_seconds_over_every_resumed_segment_but_not_the_pause(tmp_path, monkeypatch):
    now = [100.0]
    monkeypatch.setattr(checkpoint.time, "monotonic", lambda: now[0])
    config, context = generator_config("maskgit"), distributed.setup("cpu")
    run = checkpoint.RunState()
    now[0] = 130.0  # 30 s of training, then the checkpoint and a stop
    run.save(tmp_path / "checkpoint.pt", config, {}, context)
    now[0] = 1000.0  # resumed much later
    resumed = checkpoint.RunState.restore(tmp_path / "checkpoint.pt", config, {})
    now[0] = 1010.0
    assert resumed.next_epoch().seconds == 40.0


def test_maskgit_loss_falls_from_the_first_epoch_to_the_second(trained):
    _, history = trained["maskgit"]
    assert list(history["epoch"]) == [1, 2] and list(history["step"]) == [4, 8]
    assert history["train_loss"].iloc[1] < history["train_loss"].iloc[0]
    assert history["train_accuracy"].between(0, 1).all() and history["train_revisions"].iloc[0]


class _Stop(Exception):
    pass


@pytest.mark.parametrize("kind, stop", [("maskgit", (1, 0)), ("var", (1, 0)), ("maskgit", (0, 3)), ("var", (1, 3))])
def test_a_stopped_run_resumes_to_the_same_history(trained, kind, stop, tmp_path, monkeypatch):
    """Stopped at an epoch end (epoch 1, step 0) or mid-epoch (checkpoint_every = 3 of 4 steps)."""
    trained_folders, history = trained[kind]
    folders = dataclasses.replace(trained_folders, generator=tmp_path / kind)  # the trained tokenizer, a new run
    saved = checkpoint.RunState.save

    def save_then_stop(self, *args) -> None:
        saved(self, *args)
        if (self.epoch, self.step) == stop:
            raise _Stop

    monkeypatch.setattr(checkpoint.RunState, "save", save_then_stop)
    with pytest.raises(_Stop):
        train_generator(generator_config(kind), folders, progress=False)
    monkeypatch.setattr(checkpoint.RunState, "save", saved)
    resumed = train_generator(generator_config(kind), folders, progress=False)
    columns = ["epoch", "step", "train_loss", "train_accuracy"]
    pd.testing.assert_frame_equal(history[columns], resumed[columns], rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["maskgit", "var"])
def test_generated_images_have_the_tokenizer_resolution_in_range_and_repeat_for_a_fixed_seed(trained, kind):
    folders, _ = trained[kind]
    config = generator_config(kind, sampling=(("guidance_scale", 0.0),), sample_batch=2)  # batches of 2 and 1
    labels = torch.tensor([0, 1, 2])
    first, second = generate(config, folders, labels, "cpu"), generate(config, folders, labels, "cpu")
    length = 256 if kind == "maskgit" else token_count(MULTI.scales)
    assert first.tokens.shape == (3, length) and 0 <= first.tokens.min() and first.tokens.max() < SINGLE.K
    assert first.images.shape == (3, 3, 32, 32) and first.images.abs().max() <= 1
    assert torch.equal(first.tokens, second.tokens) and torch.equal(first.images, second.images)
    usage = token_usage(first.tokens, SINGLE.K)
    assert 0 < usage["utilization"] <= 1 and 1 <= usage["perplexity"] <= SINGLE.K


@pytest.mark.parametrize(
    "kind, changes, message",
    [
        ("maskgit", {"generator": "gpt"}, "unknown generator"),
        ("var", {"generator": "maskgit", "sampling": ()}, "single-scale"),
        ("maskgit", {"generator": "var"}, "multi-scale"),
        ("maskgit", {"sampling": (("steps", 4), ("beams", 2))}, "unknown maskgit sampling field 'beams'"),
        ("var", {"sampling": (("steps", 4),)}, "unknown var sampling field 'steps'"),
        ("maskgit", {"width": 33}, "multiple of heads"),
        ("maskgit", {"epochs": 0}, "epochs must be >= 1"),
        ("var", {"sample_batch": 0}, "sample_batch must be >= 1"),
    ],
)
def test_invalid_configurations_fail_with_one_line(kind, changes, message):
    with pytest.raises(ConfigError, match=message):
        generator_config(kind, **changes)


@pytest.mark.parametrize("kind", ["maskgit", "var"])
def test_evaluation_reports_diversity_usage_and_labelled_proxies_and_no_fid_without_weights(
    trained, kind, tmp_path, monkeypatch
):
    monkeypatch.setenv("VQ_INCEPTION_WEIGHTS", str(tmp_path / "absent.pth"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    folders, _ = trained[kind]
    proxy = ProxyClassifier(ProxyClassifierConfig(num_classes=3, width=16))
    config = generator_config(kind, eval_samples=12, max_pairs=20, sample_seeds=(0, 1))
    row = evaluate_generator(config, folders, "cpu", proxy=proxy)
    assert row["pixel_distance"] > 0 and row["pixel_distance_real"] > 0 and row["pixel_pairs"] == 20
    assert row["pixel_distance_std"] >= 0  # two draws: a spread
    assert 0 < row["gen_utilization"] <= 1 and 0 < row["tok_utilization"] <= 1
    assert pd.isna(row["gfid"]) and row["gfid_note"].startswith("not computed")
    assert {"proxy_frechet", "proxy_precision", "proxy_recall", "proxy_vendi"} <= set(row)


@pytest.mark.parametrize("kind", ["maskgit", "var"])
def test_evaluation_reads_diversity_against_the_tokenizer_ceiling_and_gates_the_generator(trained, kind):
    folders, _ = trained[kind]
    proxy = ProxyClassifier(ProxyClassifierConfig(num_classes=3, width=16))
    config = generator_config(kind, eval_samples=12, max_pairs=20, sample_seeds=(0, 1))
    row = evaluate_generator(config, folders, "cpu", proxy=proxy)
    contract = (*METRICS, *METRICS_ISSUE36)
    own = [m for m in contract if m not in TOKENIZER_METRICS and not m.startswith("generator_train")]
    assert [m for m in own if m not in row] == []  # every column of the contract, and of the one it will join
    for reading in ("pixel_distance", "pixel_mad255"):
        assert row[f"{reading}_recon"] > 0 and row[f"{reading}_test"] > 0 and row[f"{reading}_std"] >= 0
        # the mean of per-draw ratios to one ceiling is the ratio of the mean
        assert row[f"{reading}_rel"] == pytest.approx(row[reading] / row[f"{reading}_recon"], rel=1e-12)
    assert 0 < row["token_nll"] and 0 < row["token_nll_unigram"] <= math.log(SINGLE.K) + 1e-12
    assert row["chance_accuracy"] == pytest.approx(1 / 3) and 0 <= row["proxy_class_accuracy"] <= 1
    assert row["proxy_is"] >= 1 - 1e-9 and math.isfinite(row["proxy_kid"]) and row["proxy_note"] == ""
    expected = generator_validity(row["token_nll"], row["token_nll_unigram"], row["proxy_class_accuracy"], 3)
    assert (row["generator_valid"], row["generator_valid_note"]) == expected and expected[0] in (0.0, 1.0)
    without = evaluate_generator(dataclasses.replace(config, sample_seeds=(0,)), folders, "cpu")  # no proxy
    assert all(pd.isna(without[name]) for name in ("proxy_kid", "proxy_is", "proxy_class_accuracy", "proxy_frechet"))
    assert without["proxy_note"].startswith("not computed") and without["token_nll"] == row["token_nll"]
    assert pd.isna(without["generator_valid"]) != (without["generator_valid"] == 0.0)  # undecided, or failed on NLL


@pytest.mark.parametrize(
    "nll, unigram, accuracy, classes, valid, note",
    [
        (3.0, 4.0, 0.5, 10, 1.0, ""),  # beats the unigram, classified 5 x chance
        (4.0, 4.0, 0.5, 10, 0.0, "token_nll 4 >= unigram 4"),  # no better than code frequencies
        (3.0, 4.0, 0.2, 10, 0.0, "proxy_class_accuracy 0.2 <= 2 x chance 0.1"),  # exactly 2 x chance: not enough
        (3.0, 4.0, float("nan"), 1, 1.0, ""),  # one class: nothing to condition on, no accuracy needed
        (3.0, 4.0, float("nan"), 10, float("nan"), "not decided: no proxy class accuracy"),
        (5.0, 4.0, float("nan"), 10, 0.0, "token_nll 5 >= unigram 4"),  # fails whatever the accuracy
        (float("nan"), 4.0, 0.5, 10, float("nan"), "not decided: no token NLL"),
    ],
)
def test_a_generator_is_valid_when_it_beats_the_unigram_and_twice_chance(nll, unigram, accuracy, classes, valid, note):
    found, reason = generator_validity(nll, unigram, accuracy, classes)
    assert found == valid or (math.isnan(found) and math.isnan(valid))
    assert note in reason and (reason == "") == (found == 1.0)


def test_unigram_baseline_is_the_entropy_of_add_one_smoothed_code_frequencies():
    tokens = torch.tensor([[0, 0, 1], [0, 1, 1]])  # K = 4: counts 3, 3, 0, 0 -> 4, 4, 1, 1 of 10
    p = torch.tensor([0.4, 0.4, 0.1, 0.1], dtype=torch.float64)
    assert unigram_entropy(tokens, 4) == pytest.approx(float(-(p * p.log()).sum()), rel=1e-12)


@pytest.mark.parametrize("kind", ["maskgit", "autoregressive", "var"])
def test_held_out_nll_of_a_generator_with_a_zero_output_head_is_log_k(kind, trained):
    """Uniform predictions cost log K nats per token, whatever the loss reads (masked half or teacher forcing)."""
    config = generator_config(kind, tokenizer=MULTI if kind == "var" else SINGLE, sample_batch=3)
    torch.manual_seed(0)
    model = generator.build_generator(config, 3).eval()
    with torch.no_grad():
        model.head.weight.zero_()
        if model.head.bias is not None:
            model.head.bias.zero_()
    quantizer = load_trained(MULTI, trained["var"][0].tokenizer).quantizer if kind == "var" else None
    tokens = torch.randint(SINGLE.K, (7, config.tokens_per_image), generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    nll = held_out_nll(config, model, tokens, labels, quantizer)
    assert nll == pytest.approx(math.log(SINGLE.K), rel=1e-6)
    assert held_out_nll(config, model, tokens, labels, quantizer) == nll  # a fixed seed: the same masks


@pytest.mark.parametrize("kind", ["maskgit", "autoregressive"])
def test_held_out_nll_is_the_plain_nll_of_the_true_labels_half_masked_for_maskgit(kind, monkeypatch):
    """Neither label dropout (0.9 here) nor MaskGIT's label smoothing (0.1) enters; MaskGIT reads ceil(N / 2)
    masked positions of every grid, the rest given."""
    config = generator_config(kind, tokenizer=SINGLE, sample_batch=4)
    torch.manual_seed(0)
    model = generator.build_generator(config, 3)
    model.config = dataclasses.replace(model.config, label_dropout=0.9)
    with torch.no_grad():
        model.head.weight.normal_(0, 0.5)  # the autoregressive head starts at zero: predictions to score
    model.eval()
    seen, forward = [], type(model).forward

    def spy(self, tokens, labels, at=None):
        logits = forward(self, tokens, labels) if at is None else forward(self, tokens, labels, at)
        seen.append((tokens, labels, at, logits))
        return logits

    monkeypatch.setattr(type(model), "forward", spy)
    tokens = torch.randint(SINGLE.K, (6, 256), generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 1, 2, 2, 1, 0])
    nll = held_out_nll(config, model, tokens, labels, None)
    assert torch.equal(torch.cat([given for _, given, _, _ in seen]), labels)  # no label became the null class
    if kind == "maskgit":
        masks = torch.cat([at for _, _, at, _ in seen])
        assert masks.sum(1).tolist() == [math.ceil(MASK_RATIO * 256)] * 6
        assert torch.equal(torch.cat([read for read, _, _, _ in seen]) == model.mask_id, masks)
        expected = torch.nn.functional.cross_entropy(torch.cat([out for _, _, _, out in seen]), tokens[masks])
    else:
        logits = torch.cat([out for _, _, _, out in seen])
        expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens.flatten())
    assert nll == pytest.approx(float(expected), rel=1e-5)


def test_balanced_labels_give_every_class_equally_often():
    assert balanced_labels(7, 3).tolist() == [0, 1, 2, 0, 1, 2, 0]


TORCHRUN_SCRIPT = """
import sys
from pathlib import Path
import torch
from replicate import distributed
from replicate.experiments import generation
from replicate.results import Workspace
from replicate.train import generator, tokenizer
out = Path(sys.argv[1])
config = generation.DQ_GENERATION.configs('smoke')[2]  # VAR on the multi-scale smoke tokenizer
assert config.generator == 'var'
captured = {}
build = generator.build_generator
def capture(*args):
    captured['model'] = build(*args)
    return captured['model']
generator.build_generator = capture
folders = generator.generator_folders(config, Workspace(torch.device('cpu'), out))
tokenizer.train_tokenizer(config.tokenizer, folders.tokenizer, progress=False)
generator.train_generator(config, folders, progress=False)
torch.save({n: p.detach() for n, p in captured['model'].named_parameters()}, out / f'rank{distributed.rank()}.pt')
distributed.teardown()
"""


def test_var_trains_under_two_process_torchrun_with_identical_ranks(tmp_path):
    first, second = two_rank_parameters(TORCHRUN_SCRIPT, tmp_path)
    assert first.keys() == second.keys() and len(first) > 0
    assert [name for name in first if not torch.equal(first[name], second[name])] == []
