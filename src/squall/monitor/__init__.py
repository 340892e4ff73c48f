"""squall.monitor: CPU and memory of the target, its databases and the load generator.

Start a :class:`ResourceMonitor` over :class:`GroupSpec` groups (see
:func:`standard_groups`), stop it, and read the :class:`MonitorReport`.
"""

from squall.monitor.report import GroupReport, MonitorReport
from squall.monitor.sampler import MonitorError, PsutilProbe, Reading, ResourceMonitor
from squall.monitor.stats import GroupStats, LeakEstimate, ResourceSample, summarize
from squall.monitor.targets import (
    GENERATOR,
    POSTGRES,
    REDIS,
    TARGET,
    GroupSpec,
    discover,
    generator_group,
    listening_pids,
    standard_groups,
    target_group,
)

__all__ = [
    "GENERATOR",
    "POSTGRES",
    "REDIS",
    "TARGET",
    "GroupReport",
    "GroupSpec",
    "GroupStats",
    "LeakEstimate",
    "MonitorError",
    "MonitorReport",
    "PsutilProbe",
    "Reading",
    "ResourceMonitor",
    "ResourceSample",
    "discover",
    "generator_group",
    "listening_pids",
    "standard_groups",
    "summarize",
    "target_group",
]
