"""What to run: a behaviour, a workload, identities and parameters.

A behaviour is ``async def behaviour(session: Session) -> None``, one iteration
of one virtual user. Give it as an import path (``"package.module:function"``)
so worker processes can import it; a callable works for single-process runs and,
when it is a module-level function, for worker processes too.
"""

from __future__ import annotations

import importlib
import inspect
import pickle
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from squall.engine.errors import ScenarioError
from squall.engine.identity import AnonymousIdentities, IdentityFactory
from squall.engine.workload import ArrivalRate, Closed, Stages, Workload
from squall.import_paths import module_failed, not_on_path_hint

if TYPE_CHECKING:
    from squall.engine.session import Session

Behaviour = Callable[["Session"], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    name: str
    behaviour: str | Behaviour
    workload: Workload
    identities: IdentityFactory = field(default_factory=AnonymousIdentities)
    params: dict[str, Any] = field(default_factory=dict)
    #: Seconds in-flight iterations may run on after the schedule ends, before cancellation.
    graceful_stop_s: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.behaviour, str) and not callable(self.behaviour):
            raise ScenarioError(
                f"scenario {self.name!r}: behaviour={self.behaviour!r} is neither an "
                "'async def' function nor its import path 'package.module:function'"
            )
        if not isinstance(self.workload, Closed | ArrivalRate | Stages):
            raise ScenarioError(
                f"scenario {self.name!r}: workload={self.workload!r} is not a workload; make "
                "one with closed(), open_rate(), ramping_rate() or stages()"
            )
        if not isinstance(self.params, Mapping):
            raise ScenarioError(
                f"scenario {self.name!r}: params={self.params!r:.80} is a "
                f"{type(self.params).__name__}, not a mapping of names to values; give a "
                "dict, e.g. params={'messages': 10}"
            )
        grace = self.graceful_stop_s
        if isinstance(grace, bool) or not isinstance(grace, int | float) or not 0 <= grace < 1e9:
            raise ScenarioError(
                f"scenario {self.name!r}: graceful_stop_s={grace!r} must be a number of "
                "seconds >= 0"
            )

    def resolve_behaviour(self) -> Behaviour:
        """The behaviour callable, importing it if it was given as a path; a
        :class:`ScenarioError` naming the fix when it cannot be one."""
        found = self._import_behaviour()
        if inspect.isasyncgenfunction(found) or inspect.isgeneratorfunction(found):
            name = getattr(found, "__qualname__", repr(found))
            raise ScenarioError(
                f"behaviour {name!r} of scenario {self.name!r} is a generator (it has "
                "'yield'): a behaviour is one iteration, an 'async def' that returns; "
                "remove the 'yield'"
            )
        return found

    def _import_behaviour(self) -> Behaviour:
        if not isinstance(self.behaviour, str):
            return self.behaviour
        module_name, sep, attribute = self.behaviour.partition(":")
        if not sep or not module_name or not attribute:
            raise ScenarioError(
                f"behaviour {self.behaviour!r} is not an import path; "
                "write it as 'package.module:function'"
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            hint = not_on_path_hint(module_name) if isinstance(exc, ModuleNotFoundError) else ""
            raise ScenarioError(
                f"cannot import module {module_name!r} of behaviour {self.behaviour!r}: {exc}; "
                f"make sure it is importable (installed or on sys.path).{hint}"
            ) from exc
        except Exception as exc:  # the module itself failed: a syntax error, a NameError...
            raise ScenarioError(
                f"cannot import module {module_name!r} of behaviour {self.behaviour!r}: it "
                f"{module_failed(exc)}"
            ) from exc
        found = getattr(module, attribute, None)
        if not callable(found):
            raise ScenarioError(
                f"module {module_name!r} has no callable {attribute!r} "
                f"(behaviour {self.behaviour!r}); define 'async def {attribute}(session)'"
            )
        behaviour: Behaviour = found
        return behaviour

    def unpicklable(self) -> list[str]:
        """The parts that keep the scenario from being sent to worker processes (pickled):
        ``behaviour``, ``identities``, ``params`` (each that cannot be), else nothing."""
        parts = [name for name in ("behaviour", "identities") if _in_interactive_main(self, name)]
        try:
            pickle.dumps(self)
        except (pickle.PicklingError, AttributeError, TypeError):
            pass
        else:
            return parts
        for name in ("behaviour", "identities", "params"):
            try:
                pickle.dumps(getattr(self, name))
            except (pickle.PicklingError, AttributeError, TypeError):
                if name not in parts:
                    parts.append(name)
        return parts or ["scenario"]


def _in_interactive_main(scenario: Scenario, name: str) -> bool:
    """Whether ``scenario``'s ``name`` was defined in an interactive ``__main__`` (a notebook,
    ``python -c``, a REPL): pickle sends it by name, and no worker process can import it."""
    module = getattr(getattr(scenario, name), "__module__", None)
    main = sys.modules.get("__main__")
    return module == "__main__" and getattr(main, "__file__", None) is None
