"""Task registry: `config.task` names a module `salsa.training.tasks.<name>` holding the task class.

The class is the module's `TASK` attribute if it has one, else `<CamelCaseName>Task` (generator ->
GeneratorTask). A name of the form `package.module:ClassName` loads any importable class instead
(used by tests and out-of-tree experiments). Every task subclasses salsa.training.task.Task.
"""

from __future__ import annotations

import importlib
import pkgutil

from salsa.errors import UserError
from salsa.training.task import Task


def known() -> list[str]:
    """Names of the tasks in this package."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get(name: str) -> type[Task]:
    """The task class named `name`; UserError naming the known tasks if there is none."""
    if ":" in name:
        module_name, _, attr = name.partition(":")
    else:
        module_name = f"{__name__}.{name}"
        attr = None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is None or not module_name.startswith(e.name):
            raise  # the task exists but one of its own imports is missing
        raise UserError(f"unknown task {name!r}; known tasks: {', '.join(known()) or '(none)'}.") from None
    if attr is None:
        attr = (
            "TASK" if hasattr(module, "TASK") else "".join(p.capitalize() for p in name.split("_")) + "Task"
        )
    cls = getattr(module, attr, None)
    if cls is None:
        raise UserError(f"task module {module_name} defines no class {attr!r}.")
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise UserError(f"task {name!r} ({module_name}.{attr}) is not a salsa.training.task.Task subclass.")
    return cls
