"""A process-wide count of parameter and submodule registrations on any ``nn.Module``.

Code that lists a model's parameters once and reuses the list (the text path's parameters, EWC's
anchored terms) must list them again when a parameter or submodule is replaced, e.g. a head
that grows. torch's global registration hooks see every ``register_parameter`` /
``register_module`` (and the attribute assignments that call them); :func:`registration_generation`
counts them, so a list made at one count is current while the count is unchanged. Deleting a
parameter or submodule registers nothing and is not counted.
"""

from __future__ import annotations

from torch import nn

__all__ = ["registration_generation"]

_generation = 0
_hooks_installed = False


def _bump(*_: object) -> None:
    global _generation
    _generation += 1


def registration_generation() -> int:
    """The number of registrations since the hooks were installed (on the first call: importing
    the package has no side effects)."""
    global _hooks_installed
    if not _hooks_installed:
        nn.modules.module.register_module_parameter_registration_hook(_bump)
        nn.modules.module.register_module_module_registration_hook(_bump)
        _hooks_installed = True
    return _generation
