"""Components by name (as timm's registries): one ``Registry`` per kind of component.

Models, losses, detectors, evaluation protocols and distillation teachers each keep one::

    _LOSSES = Registry("loss", add_with="facecore.networks.losses.register_loss")

    @_LOSSES.register("cosface")
    class CosFace(nn.Module): ...

    _LOSSES.lookup("cosface")  # an unknown name raises ValueError listing the valid ones

A registry is a ``dict`` of name -> factory, so ``dict(reg)``, ``name in reg`` and iteration work as
usual; ``copy()`` keeps its kind (tests register toy components on a copy).
"""
from __future__ import annotations

from typing import Any, Callable


class Registry(dict):
    """Name -> factory of one ``kind`` of component."""

    def __init__(self, kind: str, add_with: str = "", unique: bool = False):
        """``add_with``: the function users call to add one (named in the unknown-name error);
        ``unique``: registering a taken name is an error (else the new factory replaces the old)."""
        super().__init__()
        self.kind, self.add_with, self.unique = kind, add_with, unique

    def register(self, name: str, factory: Callable[..., Any] | None = None):
        """Register ``factory`` under ``name``; without ``factory``, a decorator that does."""
        def add(f: Callable[..., Any]) -> Callable[..., Any]:
            if not name or not isinstance(name, str):
                raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
            if self.unique and name in self:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self[name] = f
            return f

        return add(factory) if factory is not None else add

    def names(self) -> list[str]:
        return sorted(self)

    def lookup(self, name: str) -> Callable[..., Any]:
        """The factory registered as ``name``; an unknown name raises ValueError listing the valid ones."""
        if name not in self:
            hint = f" (add one with {self.add_with})" if self.add_with else ""
            raise ValueError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}{hint}")
        return self[name]

    def copy(self) -> "Registry":
        new = Registry(self.kind, self.add_with, self.unique)
        new.update(self)
        return new
