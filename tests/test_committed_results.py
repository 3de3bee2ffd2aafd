"""Reads the committed result tables (tables/*.csv), runs no experiment: every row says what configuration
produced it, fully, and one config_id never stands for two configurations."""

import pandas as pd
import pytest
import torch

from replicate.registry import EXPERIMENTS
from replicate.results import TABLES, configuration_fields, provenance, quantizer_columns, read_csv, result_path
from replicate.spec import SCALES

pytestmark = pytest.mark.results

COMMITTED = {
    name: {scale: read_csv(result_path(name, scale)) for scale in SCALES if result_path(name, scale).exists()}
    for name in EXPERIMENTS
}


@pytest.mark.parametrize("name", [n for n, tables in COMMITTED.items() if tables])
def test_a_config_id_names_one_configuration_across_the_tables_of_an_experiment(name):
    frame = pd.concat(COMMITTED[name].values(), ignore_index=True)
    identity = frame.loc[:, "config_id":"data"].drop(columns="data").astype(str)
    assert identity.groupby("config_id").nunique().le(1).all().all()
    for table in COMMITTED[name].values():
        assert table["config_id"].is_unique


@pytest.mark.parametrize("name", [n for n, tables in COMMITTED.items() if tables])
def test_every_committed_row_carries_its_configuration_and_resolved_quantizer_settings(name):
    experiment = EXPERIMENTS[name]
    for scale, table in COMMITTED[name].items():
        config = experiment.configs(scale)[0]
        expected = {*configuration_fields(config), *quantizer_columns(config)}
        assert expected <= set(table.columns), expected - set(table.columns)
        recorded = [*provenance(torch.device("cpu")), "seconds", "data"]  # the columns every run writes
        assert set(recorded) <= set(table.columns), set(recorded) - set(table.columns)
        assert table[recorded].notna().all().all(), f"{name} {scale}: a provenance cell is empty"


def test_no_committed_file_holds_an_absolute_machine_path():
    for path in [*TABLES.glob("*.csv"), *TABLES.glob("*.md")]:
        text = path.read_text()
        assert "/root/" not in text and "/home/" not in text and "/tmp/" not in text, path.name


def test_metric_columns_hold_numbers_only():
    for tables in COMMITTED.values():
        for table in tables.values():
            for column in ("lpips", "rfid", "psnr", "ssim", "utilization", "perplexity"):
                if column in table.columns:
                    assert pd.api.types.is_numeric_dtype(table[column]), column
