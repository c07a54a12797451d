"""The loader registry: data set name -> loader (``loader(**kwargs) -> Dataset``).

The built-in data sets (``"fashion_mnist"``, ``"mnist"``, ``"cifar10"``, ``"cifar100"``, ``"mnist1d"``,
``"digits"``) are registered here, at
import, and cannot be replaced or removed; :func:`register_dataset` adds your own (then ``dataset=name`` works in
experiments and in ``jtricks run --set dataset=name``). :data:`LOADERS` is a read-only view of the table;
:func:`load` loads a data set by name. Names are normalized: surrounding spaces dropped, lower case, ``-`` read as
``_`` (``"fashion-mnist"``).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import Any

from jtricks.data._cifar import cifar10, cifar100
from jtricks.data._dataset import Dataset
from jtricks.data._generated import digits, mnist1d
from jtricks.data._idx import fashion_mnist, mnist

__all__ = ["LOADERS", "register_dataset", "unregister_dataset", "names", "loader", "load"]


_LOADERS: dict[str, Callable[..., Dataset]] = {
    "fashion_mnist": fashion_mnist,
    "mnist": mnist,
    "cifar10": cifar10,
    "cifar100": cifar100,
    "mnist1d": mnist1d,
    "digits": digits,
}
#: The data sets jtricks ships (they cannot be replaced or removed).
_BUILTIN: frozenset[str] = frozenset(_LOADERS)

#: Data set name → loader (a read-only view; add entries with :func:`register_dataset`).
LOADERS: Mapping[str, Callable[..., Dataset]] = types.MappingProxyType(_LOADERS)


def _normalize_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"a data set name must be a non-empty str, got {name!r}")
    return name.strip().lower().replace("-", "_")


def register_dataset(name: str, loader: Callable[..., Dataset], *, overwrite: bool = False) -> None:
    """Make ``loader`` (``loader(**kwargs) -> Dataset``) available as ``dataset=name`` in experiments, in
    :func:`load` and in ``jtricks run --set dataset=name``. Register it in the experiment file (it runs
    before the experiment is validated).

    Raises:
      ValueError: ``name`` is taken (pass ``overwrite=True`` to replace a user entry; built-in data sets
        cannot be replaced).
      TypeError: ``loader`` is not callable.
    """
    key = _normalize_name(name)
    if not callable(loader):
        raise TypeError(f"`loader` must be callable (loader(**kwargs) -> Dataset), got {type(loader).__name__}")
    if key in _LOADERS and (key in _BUILTIN or not overwrite):
        raise ValueError(
            f"data set {key!r} is already registered" + ("" if key in _BUILTIN else "; pass overwrite=True")
        )
    _LOADERS[key] = loader


def unregister_dataset(name: str) -> None:
    """Remove a data set registered with :func:`register_dataset` (built-in data sets stay).

    Raises:
      ValueError: ``name`` is built in or not registered.
    """
    key = _normalize_name(name)
    if key in _BUILTIN or key not in _LOADERS:
        raise ValueError(f"{name!r} is not a user-registered data set; registered: {sorted(_LOADERS)}")
    del _LOADERS[key]


def names() -> tuple[str, ...]:
    """The registered data set names."""
    return tuple(_LOADERS)


def loader(name: str) -> Callable[..., Dataset]:
    """The loader registered as ``name``.

    Raises:
      ValueError: an unknown name (the message lists the known ones).
    """
    key = _normalize_name(name)
    if key not in _LOADERS:
        raise ValueError(
            f"unknown data set {name!r}; known: {', '.join(sorted(_LOADERS))} "
            "(register your own with jtricks.data.register_dataset)"
        )
    return _LOADERS[key]


def load(name: str, **kwargs: Any) -> Dataset:
    """Load a data set by name (``"fashion_mnist"``, ``"mnist"``, ``"cifar10"``, ``"cifar100"``, ``"mnist1d"``,
    ``"digits"``).

    ``-`` is accepted for ``_`` (``"fashion-mnist"``). Keyword arguments go to the loader.

    Raises:
      ValueError: an unknown name (the message lists the known ones).
    """
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a str, got {type(name).__name__}")
    return loader(name)(**kwargs)
