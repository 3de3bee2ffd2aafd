#!/usr/bin/env bash
# vq-replicate: the one command. Set-up is automatic: the first run creates .venv and installs the project.
#
#   ./run_all.sh                          run every experiment (scale: paper where CUDA is present, else cpu)
#   ./run_all.sh --only wvq_table4[,...]  run some experiments       --scale smoke|cpu|paper   --force (recompute)
#   ./run_all.sh --list                   list the experiments       --set KEY=VALUE (override a config field)
#   ./run_all.sh --plan [--only ...]      what a run would cost      (configurations, data, FLOPs, GPU-hours)
#   ./run_all.sh --dry-run --scale paper  every configuration two steps at full size; writes no results
#                                                                   --where KEY=VALUE[,VALUE] (only those configs)
#   ./run_all.sh test [pytest args]       run the test suite (`test -m slow`: the slow tests it leaves out; CI runs both)
#   ./run_all.sh lint                     ruff check and ruff format --check (CI runs it too)
#
# Outputs: tables/E_S.csv (results), tables/E_S.md (comparison with the paper), figures/E*_S.png, and REPORT.md
# (every artifact's verdict, from all committed tables; also `python -m replicate report --all`).
# Runs resume: finished configurations are skipped. To use an existing environment (e.g. your CUDA build of
# torch) instead of .venv, set VQ_PYTHON=/path/to/python.
set -euo pipefail
cd "$(dirname "$0")"

if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  exit 0
fi

if [ -n "${VQ_PYTHON:-}" ]; then
  python="$VQ_PYTHON"
else
  if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv"
    python3 -m venv .venv
  fi
  python=.venv/bin/python
fi
stamp="$("$python" -c 'import sys; print(sys.prefix)')/.vq-replicate-installed"
wanted="$(cat pyproject.toml | sha1sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "[setup] installing vq-replicate and its dependencies into $("$python" -c 'import sys; print(sys.prefix)')"
  echo "[setup] (first time: several minutes; torch alone is a few GB)"
  "$python" -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
  "$python" -m pip install --quiet -e ".[test]" 2>&1 | grep -v "is ignored" || true
  "$python" -c "import torch, torchvision, faiss, pandas, matplotlib, lpips, torch_fidelity" \
    || { echo "[setup] installation failed; see the pip output above" >&2; exit 1; }
  echo "$wanted" > "$stamp"
fi

case "${1:-}" in
  test) shift; exec "$python" -m pytest "$@" ;;
  lint) "$python" -m ruff check . && exec "$python" -m ruff format --check . ;;
  --list) exec "$python" -m replicate list ;;
  --plan) shift; exec "$python" -m replicate plan "$@" ;;
  *) status=0
     "$python" -m replicate run "$@" || status=$?
     case " $* " in *" --dry-run "*) exit "$status" ;; esac  # a dry run writes no results: nothing to report
     "$python" -m replicate report --all  # REPORT.md from every committed table
     exit "$status" ;;
esac
