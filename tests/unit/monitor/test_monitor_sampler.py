"""The sampling loop with a scripted probe and an injected clock: no psutil, no waiting."""

from __future__ import annotations

import asyncio
import errno
import math
from collections.abc import Mapping, Sequence

import pytest

from squall.monitor.report import MonitorReport
from squall.monitor.sampler import MonitorError, Reading, ResourceMonitor
from squall.monitor.targets import GroupSpec
from squall.suite import sampling_note


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay
        await asyncio.sleep(0)


class ScriptedProbe:
    """Target RSS grows 10 MB per read; the generator stays at 50 MB."""

    def __init__(self) -> None:
        self.reads: list[float] = []

    def read(self, groups: Sequence[GroupSpec], now: float) -> Mapping[str, Reading]:
        self.reads.append(now)
        n = len(self.reads)
        return {
            "target": Reading(100.0 + 10 * n, 25.0, 8, 20, 3, (10, 11), denied=1),
            "generator": Reading(50.0, 5.0, 2, 5, 1, (1,)),
        }


GROUPS = [GroupSpec("target", pids=(10,)), GroupSpec("generator", pids=(1,))]


async def test_samples_on_the_injected_clock_and_reports() -> None:
    clock, probe = FakeClock(), ScriptedProbe()
    monitor = ResourceMonitor(GROUPS, interval_s=0.5, clock=clock, sleep=clock.sleep, probe=probe)
    await monitor.start()
    await asyncio.wait_for(monitor.wait_for_samples(5), 10)
    report = await monitor.stop()
    assert probe.reads[:5] == [100.0, 100.5, 101.0, 101.5, 102.0]
    assert all(delay == pytest.approx(0.5) for delay in clock.sleeps)
    target = report.groups["target"]
    assert target.stats.start_mb == 110.0
    assert target.stats.growth_mb == 10.0 * (target.stats.samples - 1)
    assert target.stats.cpu_avg_percent == 25.0
    assert target.pids == (10, 11)
    assert target.denied == target.stats.samples
    assert [s.t for s in target.series][:3] == [0.0, 0.5, 1.0]
    assert target.stats.leak is not None
    assert target.stats.leak.slope_mb_per_min >= 10 / 0.5 * 60  # the last sample is at stop
    # Steep, but 2.5 s of samples is start-up: too short to call a leak (see the stats tests).
    assert not target.stats.leak.probable_leak
    assert report.groups["generator"].stats.growth_mb == 0.0
    assert report.interval_s == 0.5
    assert "idle" in repr(monitor)


async def test_missing_group_reading_counts_as_zero_and_memory_is_bounded() -> None:
    clock = FakeClock()

    class OnlyTarget(ScriptedProbe):
        def read(self, groups: Sequence[GroupSpec], now: float) -> Mapping[str, Reading]:
            return {"target": super().read(groups, now)["target"]}

    monitor = ResourceMonitor(
        GROUPS, interval_s=1.0, clock=clock, sleep=clock.sleep, probe=OnlyTarget(), max_samples=4
    )
    for _ in range(20):
        clock.now += 1.0
        monitor.sample_once()
    report = monitor.report()
    assert report.groups["generator"].stats.peak_processes == 0
    target = report.groups["target"]
    assert target.stats.samples == 20
    assert len(target.series) <= 5
    assert target.stride > 1
    assert target.stats.peak_mb == 300.0


async def test_falling_behind_skips_ticks_instead_of_bursting() -> None:
    clock = FakeClock()

    class SlowProbe(ScriptedProbe):
        def read(self, groups: Sequence[GroupSpec], now: float) -> Mapping[str, Reading]:
            clock.now += 2.5  # each read takes longer than two intervals
            return super().read(groups, now)

    monitor = ResourceMonitor(
        GROUPS, interval_s=1.0, clock=clock, sleep=clock.sleep, probe=SlowProbe()
    )
    await monitor.start()
    await asyncio.wait_for(monitor.wait_for_samples(4), 10)
    await monitor.stop()
    # Without the skip, the loop would try to catch up with zero-length sleeps.
    assert clock.sleeps[:3] == [pytest.approx(1.0)] * 3


async def test_a_sample_the_os_refuses_is_skipped_and_sampling_goes_on() -> None:
    clock = FakeClock()

    class FdLimitProbe(ScriptedProbe):
        """Reads 2 and 3 hit the open-files limit, as /proc reads do at a run's peak."""

        def read(self, groups: Sequence[GroupSpec], now: float) -> Mapping[str, Reading]:
            if len(self.reads) in (1, 2):
                self.reads.append(now)
                raise OSError(errno.EMFILE, "Too many open files", "/proc")
            return super().read(groups, now)

    monitor = ResourceMonitor(
        GROUPS, interval_s=1.0, clock=clock, sleep=clock.sleep, probe=FdLimitProbe()
    )
    await monitor.start()
    await asyncio.wait_for(monitor.wait_for_samples(3), 10)
    report = await monitor.stop()  # the failures did not end the monitor, nor raise here
    assert monitor.samples_failed == 2
    assert report.failed_samples == 2
    assert report.sample_error == "OSError: [Errno 24] Too many open files: '/proc'"
    target = report.groups["target"].stats
    assert target.samples == monitor.samples_taken >= 4
    assert target.start_mb == 110.0  # the first read; the failed ones left no zeros
    assert min(s.rss_mb for s in report.groups["target"].series) == 110.0
    assert "failed=2" in repr(monitor)
    assert MonitorReport.from_dict(report.to_dict()) == report
    note = sampling_note(report)
    assert note == (
        f"monitor: 2 of {target.samples + 2} samples could not be read "
        "(OSError: [Errno 24] Too many open files: '/proc'); CPU and memory leave those "
        "ticks out"
    )


def test_reports_without_the_failure_fields_read_back() -> None:
    data = MonitorReport(1.0, 2, {}).to_dict()
    del data["failed_samples"], data["sample_error"]
    report = MonitorReport.from_dict(data)
    assert (report.failed_samples, report.sample_error) == (0, None)
    assert sampling_note(report) is None


async def test_misuse_is_reported() -> None:
    monitor = ResourceMonitor(GROUPS, probe=ScriptedProbe())
    with pytest.raises(MonitorError, match="before start"):
        await monitor.wait_for_samples(1)
    async with monitor:
        with pytest.raises(MonitorError, match="called twice"):
            await monitor.start()
    for busy in (0, 1e-9, math.nan, -1.0, math.inf):  # it sampled without a pause (NaN too)
        with pytest.raises(ValueError, match=r"interval_s must be a number of seconds from 0\.05"):
            ResourceMonitor(GROUPS, interval_s=busy)
    with pytest.raises(ValueError, match="unique"):
        ResourceMonitor([GROUPS[0], GROUPS[0]])
    with pytest.raises(ValueError, match="neither pids nor ports"):
        GroupSpec("target")


@pytest.mark.parametrize("pid", [0, -1, 2**31, True])
def test_a_group_refuses_what_is_no_pid_when_made_not_mid_run(pid: int) -> None:
    with pytest.raises(
        ValueError, match=r"'target': \[.*\] are not PIDs; give process ids in 1\.\."
    ):
        GroupSpec("target", pids=(12, pid))


@pytest.mark.parametrize("port", [0, -80, 65536])
def test_a_group_refuses_what_is_no_port(port: int) -> None:
    with pytest.raises(ValueError, match=r"are not TCP ports; give ports in 1\.\.65535"):
        GroupSpec("target", ports=(port,))


async def test_stop_lets_its_callers_own_cancellation_through() -> None:
    # A Ctrl-C reaching the event loop as the main task's cancellation, just after a
    # scenario's load, was swallowed here with the sampling task's: the run went on.
    monitor = ResourceMonitor(GROUPS, probe=ScriptedProbe())
    await monitor.start()

    async def stopping() -> str:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await monitor.stop()
        return "went on"

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(stopping())
    assert (await monitor.stop()).groups  # stopped already: the report so far
