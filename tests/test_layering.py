"""One direction of flow: what reads the committed CSVs (the comparison, REPORT.md, `list`, `report`) never loads
training code.

Training code, for these tests, is what only training needs: the training loops and their helpers
(replicate.train.*, except replicate.train.configs, which only names the `train` command's configurations), the
networks (replicate.models.*), the image loaders (replicate.data.images), and the libraries that only they or one
figure use (torchvision, scikit-learn). Each check runs in a fresh interpreter, so that nothing the test session
imported hides an import.
"""

import json
import shutil
import subprocess
import sys

from replicate.results import ROOT

TRAINING = ("replicate.train.", "replicate.models", "replicate.data.images", "torchvision", "sklearn")
ONLY_CONFIGURATION = ("replicate.train.configs",)

# each step runs, then prints the training modules it loaded that no earlier step had loaded
PROBE = """
import json, sys

def training():
    return {m for m in sys.modules if m.startswith(TRAINING) and m not in ONLY_CONFIGURATION}

loaded, found = set(), {}
for step in STEPS:
    if step[0] == "import":
        __import__(step[1])
    else:
        from replicate.cli import main
        if main(step) != 0:
            raise SystemExit(f"{step} failed")
    found[" ".join(step)] = sorted(training() - loaded)
    loaded = training()
print(json.dumps(found))
"""


def training_modules_loaded_by(*steps: list[str]) -> dict[str, list[str]]:
    code = f"TRAINING, ONLY_CONFIGURATION, STEPS = {TRAINING!r}, {ONLY_CONFIGURATION!r}, {list(steps)!r}\n{PROBE}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_the_comparison_code_loads_no_training_model_or_experiment_module():
    code = (
        "import replicate.report.compare, sys; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('replicate'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    modules = loaded.stdout.split()
    assert "replicate.spec" in modules
    assert not [m for m in modules if m.startswith(("replicate.train", "replicate.models", "replicate.experiments"))]


def test_the_summary_list_and_report_commands_load_no_training_code(tmp_path):
    """`list`, `report` of every experiment and `report --all`, on a copy of the committed tables and figures."""
    for folder in ("tables", "figures"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    out = ["--out", str(tmp_path)]
    found = training_modules_loaded_by(
        ["import", "replicate.report.summary"],
        ["list"],
        ["report", "--scale", "cpu", *out],
        ["report", "--all", *out],
        ["import", "replicate.train.atomic"],  # training code: the probe sees it
    )
    probe = found.pop("import replicate.train.atomic")
    assert not {step: modules for step, modules in found.items() if modules}
    assert probe == ["replicate.train.atomic"]
    assert (tmp_path / "REPORT.md").read_text().startswith("#")
