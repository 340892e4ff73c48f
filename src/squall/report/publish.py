"""After a run: show the summary, write every result file, decide the exit code.

Files are written before anything that might fail (a results database that
is down, say), so nothing measured is lost.
"""

from __future__ import annotations

from rich.console import Console

from squall.config import Config
from squall.report.files import write_report
from squall.report.summary import print_summary
from squall.suite import SuiteReport

#: Exit code of a run stopped by Ctrl-C (128 + SIGINT), partial results kept.
EXIT_INTERRUPTED = 130


def publish(report: SuiteReport, config: Config, console: Console) -> int:
    """Print the summary, write the results; return the run's exit code."""
    print_summary(console, report)
    folder = write_report(report, config.run.results_dir)
    console.print(f"results: {folder / 'report.json'}")
    if report.interrupted:
        return EXIT_INTERRUPTED
    return report.verdict.exit_code
