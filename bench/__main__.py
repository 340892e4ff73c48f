"""``python -m bench [--only NAME ...] [--quick] [--list]``: run the benchmarks, write results.

Each benchmark writes ``bench/results/<name>.json`` (``<name>.quick.json`` for
``--quick``); then ``bench/results/summary.md`` is rebuilt from every result
file present (a full run's file wins over a quick one) and copied between the
markers of the README's Benchmarks section.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.record import RESULTS_DIR, Result, environment, log, result_path, write_result
from bench.table import render_summary, replace_between

#: name → module; each module has ``run(quick: bool) -> Result``. Order is the table's order.
BENCHMARKS = {
    "engine": "bench.engine_efficiency",
    "instructions": "bench.instructions",
    "platform": "bench.platform_throughput",
    "connections": "bench.connections",
    "ledger": "bench.ledger",
    "growth": "bench.cost_growth",
}
README = Path(__file__).resolve().parent.parent / "README.md"
SUMMARY = RESULTS_DIR / "summary.md"
START_MARK = "<!-- bench:start -->"
END_MARK = "<!-- bench:end -->"


def _runner(name: str) -> Callable[[bool], Result]:
    module = importlib.import_module(BENCHMARKS[name])
    run: Callable[[bool], Result] = module.run
    return run


def latest_results(directory: Path = RESULTS_DIR) -> list[dict[str, Any]]:
    """Every benchmark's newest result on disk, full runs preferred over quick ones."""
    found = []
    for name in BENCHMARKS:
        for quick in (False, True):
            path = result_path(name, quick, directory)
            if path.exists():
                found.append(json.loads(path.read_text()))
                break
    return found


def publish_summary() -> Path:
    """Rebuild summary.md from the result files and copy it into the README section."""
    results = latest_results()
    env = results[0]["environment"] if results else environment()
    text = render_summary(results, env)
    SUMMARY.write_text(text)
    if README.exists():
        readme = README.read_text()
        body = text.split("\n", 2)[2] if text.startswith("# ") else text
        try:
            README.write_text(replace_between(readme, START_MARK, END_MARK, body))
        except ValueError as exc:
            log(f"README not updated: {exc}")
    return SUMMARY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        choices=list(BENCHMARKS),
        help="run only this benchmark (repeatable)",
    )
    parser.add_argument("--quick", action="store_true", help="short durations, for a smoke run")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, module in BENCHMARKS.items():
            doc = (importlib.import_module(module).__doc__ or "").strip().splitlines()
            print(f"{name:12} {doc[0] if doc else ''}")
        return 0
    chosen = args.only or list(BENCHMARKS)
    failed: list[str] = []
    for name in chosen:
        log(f"{name}: starting{' (quick)' if args.quick else ''}")
        try:
            result = _runner(name)(args.quick)
        except Exception:
            log(f"{name}: FAILED\n{traceback.format_exc()}")
            failed.append(name)
            continue
        path = write_result(result.to_dict())
        log(f"{name}: wrote {path}")
    summary = publish_summary()
    log(f"summary: {summary}")
    if failed:
        log(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
