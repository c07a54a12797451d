"""The JAX runtime settings ``jtricks run`` chooses for its own process: compilation cache and CPU devices.

The command line turns them on by default (the Python API leaves the process as the user configured it;
call :func:`configure` before anything runs on a device). Neither changes a number of a run, so a run
through the command line and the same run through :func:`jtricks.runner.run` give the same bytes:

* **Persistent compilation cache.** JAX's on-disk cache of compiled XLA executables
  (``jax_compilation_cache_dir``): a rerun of an experiment — the same programs — loads its executables
  instead of compiling them. The key is a hash of the program, the compile options, the backend and the
  jax/jaxlib versions, so a cached executable is exactly the one a compile would give. Folder, in order:
  ``--compile-cache DIR``; ``$JTRICKS_COMPILE_CACHE``; ``$JAX_COMPILATION_CACHE_DIR`` (JAX's own
  variable, respected as set); ``$XDG_CACHE_HOME/jtricks/xla`` (``~/.cache/jtricks/xla``). ``--no-compile-cache``
  turns it off. Every program is cached, however short its compile (``min_compile_time_secs = 0``). The
  folder is not capped (JAX's cap needs the ``filelock`` package): the manifest records its size
  (``runtime.compile_cache_bytes``; the main job adds about a megabyte), delete the folder to empty it.
* **One XLA CPU device per core.** On the CPU, XLA runs the small matrix products of a population
  member one after another; with ``--xla_force_host_platform_device_count=<cores>`` the population axis is
  sharded over one device per core and the members run on all cores at once. Members never communicate,
  so every member's result is bit-identical to the one-device run. Not set when ``XLA_FLAGS`` already
  names the flag, when the user asks for one device (``--cpu-devices 1``) or when JAX's backends are
  already initialized (the flag would have no effect).

:func:`configure` applies both before anything touches a device and returns what it did; the runner
records it in the manifest (``runtime``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jax

__all__ = ["RuntimeSettings", "CompileMeter", "configure", "configured", "current", "default_cache_dir", "cache_size_bytes"]
_DEVICE_FLAG = "--xla_force_host_platform_device_count"


@dataclass(frozen=True)
class RuntimeSettings:
    """What :func:`configure` set: the cache folder (``None``: off), the CPU device flag it added (or why not)."""

    compile_cache: str | None
    cpu_devices: int | None
    cpu_devices_note: str
    xla_flags: str = field(default="")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def default_cache_dir() -> Path:
    """``$JTRICKS_COMPILE_CACHE``, else ``$JAX_COMPILATION_CACHE_DIR``, else ``$XDG_CACHE_HOME/jtricks/xla``."""
    for var in ("JTRICKS_COMPILE_CACHE", "JAX_COMPILATION_CACHE_DIR"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "jtricks" / "xla"


def cache_size_bytes(folder: str | os.PathLike[str]) -> int:
    """Bytes the files of a cache folder take (0 when it does not exist)."""
    p = Path(folder)
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else 0


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _backends_initialized() -> bool:
    from jax._src import xla_bridge

    return bool(getattr(xla_bridge, "_backends", {}))


def _set_cpu_devices(requested: int | None) -> tuple[int | None, str]:
    flags = os.environ.get("XLA_FLAGS", "")
    if _DEVICE_FLAG in flags:
        return None, "XLA_FLAGS already sets the CPU device count"
    n = _cores() if requested is None else requested
    if n <= 1:
        return None, "one CPU device" + (" (one core)" if requested is None else " (asked for)")
    if _backends_initialized():
        return None, "JAX backends were already initialized"
    os.environ["XLA_FLAGS"] = f"{flags} {_DEVICE_FLAG}={n}".strip()
    return n, f"{n} CPU devices (one per core)" if requested is None else f"{n} CPU devices (asked for)"


def configure(*, compile_cache: str | os.PathLike[str] | None | bool = True, cpu_devices: int | None = None) -> RuntimeSettings:
    """Turn on the compilation cache and one CPU device per core for this process; returns what was set.

    Args:
      compile_cache: ``True`` (the default folder, :func:`default_cache_dir`), a folder, or ``False`` / ``None`` (off).
      cpu_devices: number of XLA CPU devices (``None``: one per available core; ``1``: leave one device).

    Raises:
      ValueError: ``cpu_devices`` is not a positive int.
    """
    if cpu_devices is not None and (isinstance(cpu_devices, bool) or not isinstance(cpu_devices, int) or cpu_devices < 1):
        raise ValueError(f"cpu_devices must be a positive int or None (one per core), got {cpu_devices!r}")
    n_dev, note = _set_cpu_devices(cpu_devices)
    folder: str | None = None
    jax.config.update("jax_enable_compilation_cache", compile_cache not in (False, None))
    if compile_cache not in (False, None):
        path = default_cache_dir() if compile_cache is True else Path(compile_cache).expanduser()  # type: ignore[arg-type]
        path.mkdir(parents=True, exist_ok=True)
        folder = str(path.resolve())
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return RuntimeSettings(folder, n_dev, note, os.environ.get("XLA_FLAGS", ""))


_CACHE_OPTIONS = ("jax_enable_compilation_cache", "jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
                  "jax_persistent_cache_min_entry_size_bytes")


@contextlib.contextmanager
def configured(**kwargs: Any) -> Iterator[RuntimeSettings]:
    """:func:`configure` for the duration of a ``with`` block; afterwards ``XLA_FLAGS`` and the cache options
    are as before (the devices a backend started with stay), so calling the command line in-process
    (``jtricks.cli.main``) leaves no setting behind for the caller or the processes it starts later."""
    flags = os.environ.get("XLA_FLAGS")
    options = {k: getattr(jax.config, k) for k in _CACHE_OPTIONS}
    try:
        yield configure(**kwargs)
    finally:
        if flags is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = flags
        for k, v in options.items():
            jax.config.update(k, v)


def current() -> dict[str, Any]:
    """The runtime settings in effect in this process (for the manifest): the compilation cache folder
    (``None`` when off) and the bytes it holds, and the XLA flags (the device count is the manifest's ``device``)."""
    enabled = bool(jax.config.jax_enable_compilation_cache) and bool(jax.config.jax_compilation_cache_dir)
    folder = str(jax.config.jax_compilation_cache_dir) if enabled else None
    return {
        "compile_cache": folder,
        "compile_cache_bytes": cache_size_bytes(folder) if folder else 0,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


class CompileMeter:
    """XLA compile time spent while the meter is open, from JAX's monitoring events (thread-safe).

    ``xla_s`` sums ``/jax/core/compile/backend_compile_duration`` (an XLA compile, or loading the executable
    from the persistent cache on a hit); ``cache_hits`` / ``cache_misses`` count the persistent cache's answers.
    Use as a context manager; :meth:`record` gives the numbers for the manifest.
    """

    _COMPILE = "/jax/core/compile/backend_compile_duration"
    _EVENTS = {"/jax/compilation_cache/cache_hits": "cache_hits", "/jax/compilation_cache/cache_misses": "cache_misses"}

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.xla_s = 0.0
        self.programs = 0
        self.counts = {"cache_hits": 0, "cache_misses": 0}

    def _on_duration(self, event: str, duration: float, **_: Any) -> None:
        if event == self._COMPILE:
            with self._lock:
                self.xla_s += float(duration)
                self.programs += 1

    def _on_event(self, event: str, **_: Any) -> None:
        name = self._EVENTS.get(event)
        if name is not None:
            with self._lock:
                self.counts[name] += 1

    def __enter__(self) -> "CompileMeter":
        jax.monitoring.register_event_duration_secs_listener(self._on_duration)
        jax.monitoring.register_event_listener(self._on_event)
        return self

    def __exit__(self, *exc: Any) -> None:
        jax.monitoring.unregister_event_duration_listener(self._on_duration)
        jax.monitoring.unregister_event_listener(self._on_event)

    def record(self) -> dict[str, Any]:
        with self._lock:
            return {"xla_s": round(self.xla_s, 3), "programs": self.programs, **self.counts}
