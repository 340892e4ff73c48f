"""The monitor against real processes: a 200 MB allocation, children, exits, listening ports."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil  # type: ignore[import-untyped]
import pytest

from squall.monitor import (
    GroupSpec,
    MonitorReport,
    ResourceMonitor,
    discover,
    generator_group,
    listening_pids,
    standard_groups,
    target_group,
)
from squall.services import Endpoints

pytestmark = pytest.mark.integration

ALLOCATOR = """
import sys, time
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()
block = bytearray(200 * 1024 * 1024)
block[::4096] = b"\\x01" * (len(block) // 4096)  # touch every page so it is resident
sys.stdout.write("allocated\\n"); sys.stdout.flush()
sys.stdin.readline()
"""

PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()"],
                         stdin=subprocess.PIPE)
sys.stdout.write(f"{child.pid}\\n"); sys.stdout.flush()
sys.stdin.readline()
child.kill(); child.wait()
sys.stdout.write("child gone\\n"); sys.stdout.flush()
sys.stdin.readline()
"""

SERVER = """
import socket, sys
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
sys.stdout.write(f"{server.getsockname()[1]}\\n"); sys.stdout.flush()
sys.stdin.readline()
"""

PREFORK = """
import socket, subprocess, sys
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
wait = "import sys; sys.stdin.readline()"
workers = [
    subprocess.Popen([sys.executable, "-c", wait], pass_fds=[server.fileno()], stdin=sys.stdin)
    for _ in range(2)
]
port = server.getsockname()[1]
sys.stdout.write(f"{port} {workers[0].pid} {workers[1].pid}\\n"); sys.stdout.flush()
sys.stdin.readline()
"""


@pytest.fixture
def python() -> Iterator[list[subprocess.Popen[str]]]:
    """Started ``python -c`` children, killed at the end whatever happens."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait(10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def run(started: list[subprocess.Popen[str]], code: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    started.append(proc)
    return proc


async def line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    text = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
    assert text, f"child {proc.pid} exited early with {proc.poll()}"
    return text.strip()


def send(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()


async def test_monitor_sees_a_200_mb_allocation(python: list[subprocess.Popen[str]]) -> None:
    child = run(python, ALLOCATOR)
    assert await line(child) == "ready"
    monitor = ResourceMonitor([target_group(pids=[child.pid]), generator_group()], interval_s=0.1)
    await monitor.start()
    await asyncio.wait_for(monitor.wait_for_samples(3), 30)
    send(child)
    assert await line(child) == "allocated"
    await asyncio.wait_for(monitor.wait_for_samples(monitor.samples_taken + 3), 30)
    report = await monitor.stop()

    target = report.groups["target"].stats
    assert target.start_mb < 100
    assert target.peak_mb - target.start_mb >= 190
    assert target.growth_mb >= 190
    assert target.peak_processes == 1
    assert report.groups["target"].pids == (child.pid,)
    assert target.leak is not None
    assert target.leak.slope_mb_per_min > 0
    # The allocation happened in the child, not in this process.
    generator = report.groups["generator"].stats
    assert generator.growth_mb < 100
    assert child.pid not in report.groups["generator"].pids
    assert report.gauges()["memory_growth_mb"] == target.growth_mb


async def test_children_are_rediscovered_and_exits_tolerated(
    python: list[subprocess.Popen[str]],
) -> None:
    parent = run(python, PARENT)
    grandchild = int(await line(parent))
    assert {p.pid for p in discover(GroupSpec("t", pids=(parent.pid,)))} == {
        parent.pid,
        grandchild,
    }
    assert [p.pid for p in discover(GroupSpec("t", pids=(parent.pid,), children=False))] == [
        parent.pid
    ]

    monitor = ResourceMonitor([target_group(pids=[parent.pid])], interval_s=0.1)
    await monitor.start()
    await asyncio.wait_for(monitor.wait_for_samples(2), 30)
    send(parent)
    assert await line(parent) == "child gone"
    await asyncio.wait_for(monitor.wait_for_samples(monitor.samples_taken + 2), 30)
    send(parent)  # the root exits too
    await asyncio.to_thread(parent.wait, 30)
    await asyncio.wait_for(monitor.wait_for_samples(monitor.samples_taken + 2), 30)
    report = await monitor.stop()

    group = report.groups["target"]
    counts = [s.processes for s in group.series]
    assert counts[0] == 2
    assert 1 in counts
    assert counts[-1] == 0
    assert set(group.pids) == {parent.pid, grandchild}
    assert group.stats.peak_processes == 2
    # Memory ends at the last sample that found the parent, not at 0 MB once it is gone.
    last_found = [s for s in group.series if s.processes][-1]
    assert group.stats.end_mb == last_found.rss_mb > 1
    assert group.stats.growth_mb == last_found.rss_mb - group.series[0].rss_mb


async def test_finding_a_target_by_listening_port(python: list[subprocess.Popen[str]]) -> None:
    server = run(python, SERVER)
    port = int(await line(server))
    assert listening_pids([port]) == {server.pid}
    assert listening_pids([]) == set()

    monitor = ResourceMonitor([target_group(ports=[port]), generator_group()], interval_s=0.1)
    await monitor.start()
    await asyncio.wait_for(monitor.wait_for_samples(3), 30)
    report = await monitor.stop()
    target = report.groups["target"]
    assert target.pids == (server.pid,)
    assert target.stats.peak_sockets >= 1
    assert target.stats.peak_mb > 1
    assert target.stats.peak_threads >= 1
    assert target.stats.peak_open_files >= 3


SPINNER = """
import sys, threading, time
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), done.set()), daemon=True).start()
sys.stdout.write("spinning\\n"); sys.stdout.flush()
deadline = time.monotonic() + 30
while not done.is_set() and time.monotonic() < deadline:
    pass
"""


async def test_cpu_of_a_busy_process(python: list[subprocess.Popen[str]]) -> None:
    spinner = run(python, SPINNER)
    assert await line(spinner) == "spinning"
    process = psutil.Process(spinner.pid)
    before, started = sum(process.cpu_times()[:2]), time.monotonic()
    monitor = ResourceMonitor([target_group(pids=[spinner.pid])], interval_s=0.1)
    await monitor.start()
    await asyncio.wait_for(monitor.wait_for_samples(6), 30)
    report = await monitor.stop()
    used, elapsed = sum(process.cpu_times()[:2]) - before, time.monotonic() - started
    send(spinner)
    stats = report.groups["target"].stats
    # The oracle is the CPU time the kernel charged the spinner over the same window, so
    # the test holds however busy the shared machine is (its first sample reads 0 %).
    actual = used / elapsed * 100
    assert actual > 5
    assert stats.cpu_avg_percent == pytest.approx(actual, rel=0.5)
    # The peak leaves out windows too short to read (the sample taken at stop), the
    # average weighs them in: at a full core the average can end a little above the peak.
    assert stats.cpu_peak_percent >= 0.5 * actual
    assert report.gauges()["cpu_avg_percent"] == stats.cpu_avg_percent / report.cpu_count


async def test_postgres_and_redis_groups(endpoints: Endpoints) -> None:
    if endpoints.postgres_pid is None or endpoints.redis_pid is None:
        pytest.skip("services given by URL: their PIDs are unknown to squall")
    groups = standard_groups(
        postgres_pid=endpoints.postgres_pid, redis_pid=endpoints.redis_pid, generator=True
    )
    monitor = ResourceMonitor(groups, interval_s=0.1)
    await monitor.start()
    await asyncio.wait_for(monitor.wait_for_samples(3), 30)
    report = await monitor.stop()
    postgres = report.groups["postgres"]
    redis = report.groups["redis"]
    assert endpoints.postgres_pid in postgres.pids
    assert postgres.stats.peak_processes > 1  # the postmaster and its helpers
    assert postgres.stats.peak_mb > 1
    assert redis.pids == (endpoints.redis_pid,)
    assert redis.stats.peak_mb > 1
    # Servers squall started are its children, yet each is counted once.
    generator_pids = set(report.groups["generator"].pids)
    assert not generator_pids & (set(postgres.pids) | set(redis.pids))


AT_THE_FD_LIMIT = """
import asyncio, json, os, resource
from squall.monitor import ResourceMonitor, generator_group

async def main():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    monitor = ResourceMonitor([generator_group()], interval_s=0.05)
    await monitor.start()
    held = []
    try:
        while len(held) < 256:  # until the limit: /proc cannot be opened either
            held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    for _ in range(400):
        if monitor.samples_failed >= 2:
            break
        await asyncio.sleep(0.05)
    for fd in held:
        os.close(fd)
    await asyncio.wait_for(monitor.wait_for_samples(monitor.samples_taken + 2), 30)
    report = await monitor.stop()
    stats = report.groups["generator"].stats
    print(json.dumps({"failed": report.failed_samples, "error": report.sample_error,
                      "samples": stats.samples, "end_mb": stats.end_mb}))

asyncio.run(main())
"""


def test_samples_refused_at_the_open_files_limit_are_skipped_not_fatal() -> None:
    done = subprocess.run(
        [sys.executable, "-c", AT_THE_FD_LIMIT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["failed"] >= 2
    assert "Too many open files" in result["error"]
    assert result["samples"] >= 3  # before the limit, and after the files were closed
    assert result["end_mb"] > 1


async def test_a_port_shared_by_a_pre_fork_servers_processes_finds_them_all(
    python: list[subprocess.Popen[str]],
) -> None:
    # The system-wide table names one process per socket: a port of a master and its
    # workers found one worker, and its CPU and memory stood for the whole target.
    master = run(python, PREFORK)
    port, *workers = map(int, (await line(master)).split())
    for _ in range(3):  # whichever holder the table names
        found = {p.pid for p in discover(target_group(ports=[port]))}
        assert found == {master.pid, *workers}


INHERITED = """
import socket, sys
held = socket.socket(fileno=int(sys.argv[1]))  # listening, passed on by its parent
sys.stdout.write("serving\\n"); sys.stdout.flush()
sys.stdin.readline()
"""


def test_a_port_squall_itself_holds_finds_only_the_other_holders() -> None:
    # A socket-activating parent (systemd, a supervisor) that started squall holds the
    # socket too: with it, the target group was every process of the session.
    with socket.create_server(("127.0.0.1", 0)) as held:
        port = held.getsockname()[1]
        server = subprocess.Popen(
            [sys.executable, "-c", INHERITED, str(held.fileno())],
            pass_fds=(held.fileno(),),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            assert server.stdout.readline().strip() == "serving"
            assert listening_pids([port]) == {server.pid}
            (found,) = discover(target_group(ports=[port]))
            assert found.pid == server.pid
        finally:
            server.kill()
            server.wait()


SPAWNER = """
import subprocess, sys, time
burn = "import time\\nend = time.process_time() + 0.15\\nwhile time.process_time() < end: pass"
sys.stdout.write("spawning\\n"); sys.stdout.flush()
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    subprocess.run([sys.executable, "-c", burn], check=True)  # each lives well under 0.5 s
"""


def charged_seconds(process: psutil.Process) -> float:
    """CPU seconds the kernel charged ``process`` and the children it waited for."""
    times = process.cpu_times()
    return float(times.user + times.system + times.children_user + times.children_system)


def measured_seconds(report: MonitorReport) -> float:
    """The target group's CPU seconds as the monitor measured them over its samples."""
    series = report.groups["target"].series
    return report.groups["target"].stats.cpu_avg_percent / 100 * (series[-1].t - series[0].t)


async def test_cpu_of_processes_that_live_less_than_an_interval(
    python: list[subprocess.Popen[str]],
) -> None:
    # A target doing its work in short-lived processes (a pool replacing its workers, a
    # helper per request) read as nearly idle: each was seen once or never.
    spawner = run(python, SPAWNER)
    assert await line(spawner) == "spawning"
    process = psutil.Process(spawner.pid)
    monitor = ResourceMonitor([target_group(pids=[spawner.pid])], interval_s=0.5)
    await monitor.start()
    before = charged_seconds(process)  # after the monitor's first sample, which covers nothing
    await asyncio.wait_for(monitor.wait_for_samples(8), 30)
    report = await monitor.stop()
    # The oracle: what the kernel charged the spawner and the children it waited for, over
    # the monitored window (give or take the child running at each end).
    actual_seconds = charged_seconds(process) - before
    assert actual_seconds > 1.0
    assert measured_seconds(report) == pytest.approx(actual_seconds, rel=0.35)


NESTED = """
import subprocess, sys, time
burn = "import time\\nend = time.process_time() + 0.3\\nwhile time.process_time() < end: pass"
middle = "import subprocess, sys, time\\nsubprocess.run([sys.executable, '-c', sys.argv[1]])\\n"
middle += "time.sleep(0.5)"
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()
for _ in range(3):
    subprocess.run([sys.executable, "-c", middle, burn])
sys.stdout.write("done\\n"); sys.stdout.flush()
sys.stdin.readline()
"""


async def test_cpu_of_a_helper_of_a_helper_is_counted_once(
    python: list[subprocess.Popen[str]],
) -> None:
    # The helper's time came back through its parent when the helper was waited for, and
    # again through the grandparent when the parent was: counted twice.
    root = run(python, NESTED)
    assert await line(root) == "ready"
    process = psutil.Process(root.pid)
    monitor = ResourceMonitor([target_group(pids=[root.pid])], interval_s=0.25)
    await monitor.start()
    before = charged_seconds(process)
    send(root)
    assert await line(root) == "done"
    report = await monitor.stop()
    actual_seconds = charged_seconds(process) - before
    assert actual_seconds > 0.9
    assert measured_seconds(report) == pytest.approx(actual_seconds, rel=0.3)
