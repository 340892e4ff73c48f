"""``python -m bench [--only NAME ...] [--quick] [--list]``: run the benchmarks, write results.

Each benchmark writes ``bench/results/<name>.json`` (``<name>.quick.json`` for
``--quick``); then ``bench/results/summary.md`` is rebuilt from every result
file present (a full run's file wins over a quick one) and copied between the
markers of the README's Benchmarks section.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
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


#: What every result file must hold for the summary to show it.
REQUIRED_KEYS = {"title": str, "environment": dict}


def read_result(path: Path) -> dict[str, Any]:
    """The result in ``path``; ValueError saying what is wrong when it cannot be shown
    (unreadable, not JSON, not an object, or missing a key the summary needs)."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror or exc})") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        what = "is empty" if not path.read_bytes().strip() else f"is not valid JSON ({exc})"
        raise ValueError(what) from exc
    if not isinstance(data, dict):
        raise ValueError(f"holds a JSON {type(data).__name__}, not an object")
    for key, kind in REQUIRED_KEYS.items():
        if key not in data:
            raise ValueError(f"has no {key!r} key")
        if not isinstance(data[key], kind):
            raise ValueError(f"its {key!r} is not a JSON {'object' if kind is dict else 'string'}")
    return data


def latest_results(directory: Path = RESULTS_DIR) -> list[dict[str, Any]]:
    """Every benchmark's newest result on disk, full runs preferred over quick ones.

    A file that cannot be shown is skipped with a message naming it and what is wrong
    (the benchmark's quick result, if any, is used instead).
    """
    found = []
    for name in BENCHMARKS:
        for quick in (False, True):
            path = result_path(name, quick, directory)
            if not path.exists():
                continue
            try:
                data = read_result(path)
            except ValueError as exc:
                log(f"summary: skipping {path}: it {exc}")
                continue
            data.setdefault("benchmark", name)
            found.append(data)
            break
    return found


def publish_summary() -> Path:
    """Rebuild summary.md from the result files and copy it into the README section."""
    results = latest_results()
    env = results[0]["environment"] if results else environment()
    present = {r["benchmark"] for r in results}
    missing = [name for name in BENCHMARKS if name not in present]
    for name in missing:
        log(f"summary: no results for {name}")
    text = render_summary(results, env, missing=missing)
    SUMMARY.write_text(text)
    if README.exists():
        readme = README.read_text()
        body = text.split("\n", 2)[2] if text.startswith("# ") else text
        try:
            README.write_text(replace_between(readme, START_MARK, END_MARK, body))
        except ValueError as exc:
            log(f"README not updated: {exc}")
    return SUMMARY


#: Signals that end ``python -m bench`` like Ctrl-C does (a CI job cancelled, a closed
#: terminal): as KeyboardInterrupt, so every ``finally`` runs (clients, servers, databases
#: stopped) instead of the process dying with its children left behind.
INTERRUPT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """Turn :data:`INTERRUPT_SIGNALS` into KeyboardInterrupt while inside; the previous
    handlers are back afterwards."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in INTERRUPT_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
    with signals_interrupt():
        return _run_all(chosen, args.quick)


def _run_all(chosen: list[str], quick: bool) -> int:
    failed: list[str] = []
    for name in chosen:
        log(f"{name}: starting{' (quick)' if quick else ''}")
        try:
            result = _runner(name)(quick)
        except KeyboardInterrupt as exc:
            log(f"{name}: interrupted ({str(exc) or 'Ctrl-C'}); its result was not written")
            return 130
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
