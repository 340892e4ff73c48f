"""Adapters by name: ``[target] adapter`` and ``--adapter`` pick one of these.

A name is a registered adapter (``squall``, the reference protocol; ``echo``)
or the import path of an adapter class, ``"package.module:Class"``, so a
project can bring its own protocol without registering anything (an import
path also works in worker processes, which a :func:`register` call in the
parent does not reach). The registry holds import paths, not modules: checking
a name imports no I/O code; :func:`load` imports the adapter when a scenario
needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from squall.import_paths import module_failed, not_on_path_hint

if TYPE_CHECKING:
    from squall.adapters.base import Adapter

#: The built-in adapter: the reference platform's protocol (docs/protocol.md).
DEFAULT_ADAPTER = "squall"

_ADAPTERS: dict[str, str] = {
    DEFAULT_ADAPTER: "squall.adapters.reference:ReferenceAdapter",
    "echo": "squall.adapters.echo:EchoAdapter",
}


class UnknownAdapter(ValueError):
    """An adapter name that is neither registered nor an import path; lists the choices."""


def names() -> tuple[str, ...]:
    """Every registered adapter name, the default first."""
    return tuple(_ADAPTERS)


def register(name: str, path: str, *, replace: bool = False) -> None:
    """Register ``name`` as the adapter class at ``path`` (``"package.module:Class"``).

    A name already registered for another class is refused unless ``replace``
    is true, so a project's adapter cannot silently take a built-in's place
    (or two plugins each other's); registering the same path again is a no-op.
    """
    module, sep, attribute = path.partition(":")
    if not (sep and module and attribute):
        raise ValueError(
            f"adapter path {path!r} for {name!r} is not 'package.module:Class'; give the "
            "module and the class, separated by ':'"
        )
    taken = _ADAPTERS.get(name)
    if taken is not None and taken != path and not replace:
        raise ValueError(
            f"adapter name {name!r} is already registered for {taken!r}; choose another "
            "name, or pass replace=True to put "
            f"{path!r} in its place"
        )
    _ADAPTERS[name] = path


def path_of(name: str) -> str:
    """The import path of adapter ``name``, else :class:`UnknownAdapter` naming the choices."""
    if name in _ADAPTERS:
        return _ADAPTERS[name]
    module, sep, attribute = name.partition(":")
    if sep and module and attribute:
        return name
    raise UnknownAdapter(
        f"unknown adapter {name!r}; choose one of {', '.join(map(repr, _ADAPTERS))} or give "
        "an adapter class as 'package.module:Class' (see docs/adapters.md)"
    )


def load(name: str) -> Adapter:
    """An instance of the adapter ``name`` (a registered name or an import path)."""
    from squall.adapters.base import Adapter, Capabilities
    from squall.engine.errors import describe

    path = path_of(name)
    module_name, _, attribute = path.partition(":")
    source = "" if path == name else f" from {path!r}"
    named = repr(name) if path == name else f"{name!r} ({path})"
    try:
        cls = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        hint = not_on_path_hint(module_name) if isinstance(exc, ModuleNotFoundError) else ""
        raise UnknownAdapter(
            f"cannot import adapter {name!r}{source}: {exc}; "
            f"check the module is importable and defines the class.{hint}"
        ) from exc
    except Exception as exc:  # the module itself failed: a syntax error, a NameError...
        raise UnknownAdapter(
            f"cannot import adapter {name!r}{source}: importing {module_name!r} "
            f"{module_failed(exc)}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise UnknownAdapter(
            f"adapter {named} is not a subclass of squall.adapters.base.Adapter; "
            "subclass it and implement headers, message, tracker and delivered"
        )
    try:
        adapter: Adapter = cls()
    except Exception as exc:
        # Raised in the class's own code, or by Python refusing the call (tb_next is None).
        inside = exc.__traceback__ is not None and exc.__traceback__.tb_next is not None
        raise UnknownAdapter(
            f"adapter {named} cannot be created: {type(exc).__name__}: "
            f"{describe(exc) if inside else exc}; squall creates it with no arguments "
            "(Class()), so it must implement headers, message, tracker and delivered and "
            "need nothing more"
        ) from exc
    capabilities = getattr(adapter, "capabilities", None)
    if not isinstance(capabilities, Capabilities):
        raise UnknownAdapter(
            f"adapter {named} has capabilities={capabilities!r}; set the class attribute "
            "capabilities = Capabilities(...) (squall.adapters.base) saying which checks its "
            "protocol supports"
        )
    if not isinstance(getattr(adapter, "name", None), str):
        raise UnknownAdapter(
            f"adapter {named} has no name; set the class attribute name = '...' that reports "
            "and notes call its protocol"
        )
    return adapter
