"""The commands that live beside their libraries (synthesize, attack, document, serve, ...),
imported only when one of them is named.

`safemicro assess` has no use for the attack, service, workbench or mobility command modules,
yet building every command of the app cost it ~30 ms of imports and signature inspection.
The app's click group (:class:`LazyGroup`) therefore holds these names with the function
that registers them; the first lookup of a name (running it, ``--help``) imports its module
and builds its commands. ``tests/test_startup.py`` checks that :data:`LAZY` names exactly
what the registering functions add, in the order the eager app listed them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping

import typer
import typer.main
from typer.core import TyperGroup


def _synth(app: typer.Typer) -> None:
    from safemicro.cli_synth import register

    register(app)


def _attack(app: typer.Typer) -> None:
    from safemicro.attack.cli import register

    register(app)


def _metadata(app: typer.Typer) -> None:
    from safemicro.metadata.cli import register

    register(app)


def _service(app: typer.Typer) -> None:
    from safemicro.service.cli import register

    register(app)


def _workbench(app: typer.Typer) -> None:
    from safemicro.workbench.cli import register

    register(app)


def _mobility(app: typer.Typer) -> None:
    from safemicro.demo_mobility import register_table
    from safemicro.mobility.cli import register

    register_table(register(app))


# the registering functions in the order the app called them at import before
REGISTRARS = (_synth, _attack, _metadata, _service, _workbench, _mobility)

# name -> the function that registers it, in the order of `safemicro --help` (typer lists the
# commands first, then the groups, each in the order of REGISTRARS)
LAZY: dict[str, Callable[[typer.Typer], None]] = {
    "synthesize": _synth,
    "evaluate": _synth,
    "document": _metadata,
    "publish": _metadata,
    "serve": _service,
    "workbench": _workbench,
    "attack": _attack,
    "token": _service,
    "audit": _service,
    "mobility": _mobility,
}


def build(register: Callable[[typer.Typer], None]) -> dict[str, typer.core.TyperCommand | TyperGroup]:
    """The click commands ``register`` adds to an app configured as `safemicro`'s."""
    from safemicro.cli_support import command_group

    app = command_group()
    register(app)
    return dict(typer.main.get_group(app).commands)


class _Commands(MutableMapping):
    """The group's commands: built ones, and the :data:`LAZY` names built on first lookup."""

    def __init__(self, built: MutableMapping) -> None:
        self._built = dict(built)
        self._order = [*self._built, *(n for n in LAZY if n not in self._built)]

    def __getitem__(self, name: str):
        if name not in self._built and name in LAZY:
            register = LAZY[name]
            for other, command in build(register).items():
                self._built.setdefault(other, command)
        return self._built[name]

    def __setitem__(self, name: str, command) -> None:
        if name not in self._order:
            self._order.append(name)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        self._order.remove(name)
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._order))

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, name: object) -> bool:
        return name in self._order


class LazyGroup(TyperGroup):
    """`safemicro`'s click group: the :data:`LAZY` commands are imported when named."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.commands = _Commands(self.commands)
