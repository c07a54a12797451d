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
  turns it off. A folder that cannot take files (below a regular file, read-only, a full disk) is skipped
  with one warning line on stderr (``jtricks: warning: compile cache PATH unusable (REASON); running without
  it``) and the run compiles as without a cache. Every program is cached, however short its compile
  (``min_compile_time_secs = 0``). The folder is not capped (``jax_compilation_cache_max_size`` stays at its
  default, -1): the manifest records its size (``runtime.compile_cache_bytes``; the main job adds about a
  megabyte), delete the folder to empty it.
* **One XLA CPU device per core.** On the CPU, XLA runs the small matrix products of a population
  member one after another; with ``--xla_force_host_platform_device_count=<cores>`` the population axis is
  sharded over one device per core and the members run on all cores at once. Members never communicate,
  so every member's result is bit-identical to the one-device run. Not set when ``XLA_FLAGS`` already
  names the flag, when the user asks for one device (``--cpu-devices 1``) or when JAX's backends are
  already initialized (the flag would have no effect).

:func:`configure` applies both before anything touches a device and returns what it did; the runner
records it in the manifest (``runtime``).

**Numerics** (:func:`pin_numerics`, ``docs/engine.md``, "Reproducible on any machine"). XLA CPU picks
kernels by the CPU it runs on: the code it generates follows the instruction set (AVX-512 shuffles split
fused multiply-adds differently from AVX2 code), YNNPACK and oneDNN choose their matrix-product kernels
at run time, and a multi-threaded product is partitioned by the core count. So the same run rounds
differently on two machines. In ``"portable"`` mode (the default of :func:`jtricks.runner.run` and
``jtricks run``) the process is pinned to what every x86-64 CPU from AVX2 up computes alike:

* ``--xla_cpu_max_isa=AVX2``: generated code uses AVX2 and FMA, never AVX-512;
* ``--xla_cpu_experimental_ynn_fusion_type=`` and ``--xla_cpu_use_xnnpack=false``: no library kernels
  chosen by the CPU at run time;
* ``ONEDNN_MAX_CPU_ISA=AVX2``: XLA's matrix products (oneDNN's ``sgemm``) use their AVX2 kernels;
* ``--xla_cpu_multi_thread_eigen=false``: a matrix product runs on one thread, so its blocking never
  follows the core count (the populations still use every core: one device per core).

``"native"`` leaves XLA as it is: the fastest kernels for this CPU, numbers exact on this machine only.
The flags count only when set before JAX starts its backends; :func:`numerics_in_force` says which mode
the process runs in.
"""

from __future__ import annotations

import contextlib
import os
import platform
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jax

from jtricks._core import files as jfiles

__all__ = [
    "RuntimeSettings",
    "CompileMeter",
    "configure",
    "configured",
    "current",
    "default_cache_dir",
    "cache_size_bytes",
    "NUMERICS",
    "PORTABLE_XLA_FLAGS",
    "PORTABLE_ENV",
    "NumericsSettings",
    "pin_numerics",
    "numerics_in_force",
    "numerics_record",
]
_DEVICE_FLAG = "--xla_force_host_platform_device_count"

#: The numerics modes (:func:`pin_numerics`).
NUMERICS: tuple[str, ...] = ("portable", "native")

#: The XLA flags of the portable mode (module docstring).
PORTABLE_XLA_FLAGS: tuple[str, ...] = (
    "--xla_cpu_max_isa=AVX2",
    "--xla_cpu_experimental_ynn_fusion_type=",
    "--xla_cpu_use_xnnpack=false",
    "--xla_cpu_multi_thread_eigen=false",
)

#: The environment variables of the portable mode (read by oneDNN when it first runs).
PORTABLE_ENV: dict[str, str] = {"ONEDNN_MAX_CPU_ISA": "AVX2"}

_X86 = ("x86_64", "amd64", "x64")


@dataclass(frozen=True)
class RuntimeSettings:
    """What :func:`configure` set: the cache folder (``None``: off), the CPU device flag it added (or why not)."""

    compile_cache: str | None
    cpu_devices: int | None
    cpu_devices_note: str
    xla_flags: str = field(default="")
    numerics: NumericsSettings | None = None

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


@dataclass(frozen=True)
class NumericsSettings:
    """The numerics mode a process runs in (``"portable"`` or ``"native"``) and why."""

    mode: str
    note: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _flag_name(flag: str) -> str:
    return flag.split("=", 1)[0]


def _flags_in(flags: str) -> dict[str, str]:
    """``XLA_FLAGS`` as ``{name: whole flag}`` (the last occurrence of a name wins, as in XLA)."""
    return {_flag_name(f): f for f in flags.split()}


def numerics_in_force(env: Mapping[str, str] | None = None) -> str:
    """``"portable"`` when the environment (default ``os.environ``) holds every portable setting
    (:data:`PORTABLE_XLA_FLAGS`, :data:`PORTABLE_ENV`) on an x86-64 machine, else ``"native"``."""
    env = os.environ if env is None else env
    if platform.machine().lower() not in _X86:
        return "native"
    have = _flags_in(env.get("XLA_FLAGS", ""))
    flags_ok = all(have.get(_flag_name(f)) == f for f in PORTABLE_XLA_FLAGS)
    return "portable" if flags_ok and all(env.get(k) == v for k, v in PORTABLE_ENV.items()) else "native"


def pin_numerics(mode: str = "portable") -> NumericsSettings:
    """Pin this process to ``mode``'s numerics (module docstring) and return the mode it runs in.

    ``"portable"`` adds :data:`PORTABLE_XLA_FLAGS` to ``XLA_FLAGS`` and sets :data:`PORTABLE_ENV`, which
    takes effect only before JAX starts its backends (the first array or computation). It is not pinned,
    and the mode is ``"native"`` with a note saying why, when JAX has already started with other settings,
    when ``XLA_FLAGS`` or ``ONEDNN_MAX_CPU_ISA`` already set one of these to another value (yours wins), or
    on a CPU that is not x86-64. ``"native"`` changes nothing (an environment that is already portable stays so).

    Raises:
      ValueError: ``mode`` is not one of :data:`NUMERICS`.
    """
    if mode not in NUMERICS:
        raise ValueError(f"`numerics` must be one of {', '.join(map(repr, NUMERICS))}; got {mode!r}")
    if mode == "native" or numerics_in_force() == "portable":
        found = numerics_in_force()
        return NumericsSettings(found, "as requested" if found == mode else "the environment was already portable")
    if platform.machine().lower() not in _X86:
        return NumericsSettings(
            "native", f"portable numerics are defined for x86-64 CPUs; this one is {platform.machine()}"
        )
    if _backends_initialized():
        return NumericsSettings(
            "native",
            "JAX had started before the portable settings could be set (set them first: "
            "jtricks.runtime.pin_numerics() before any JAX computation)",
        )
    have = _flags_in(os.environ.get("XLA_FLAGS", ""))
    clash = [have[_flag_name(f)] for f in PORTABLE_XLA_FLAGS if _flag_name(f) in have and have[_flag_name(f)] != f]
    clash += [f"{k}={os.environ[k]}" for k, v in PORTABLE_ENV.items() if os.environ.get(k, v) != v]
    if clash:
        return NumericsSettings("native", f"kept your own setting {' '.join(clash)}")
    added = [f for f in PORTABLE_XLA_FLAGS if _flag_name(f) not in have]
    os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", "")] + added).strip()
    for k, v in PORTABLE_ENV.items():
        os.environ[k] = v
    return NumericsSettings("portable", "pinned for this process")


def numerics_record() -> dict[str, Any]:
    """The numerics of this process, for the manifest: the ``mode`` (:func:`numerics_in_force`), the XLA flags
    and the oneDNN instruction-set cap it runs with."""
    return {
        "mode": numerics_in_force(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
    }


def configure(
    *,
    compile_cache: str | os.PathLike[str] | None | bool = True,
    cpu_devices: int | None = None,
    numerics: str = "portable",
) -> RuntimeSettings:
    """Pin the numerics, turn on the compilation cache and one CPU device per core for this process; returns
    what was set.

    Args:
      compile_cache: ``True`` (the default folder, :func:`default_cache_dir`), a folder, or ``False`` / ``None`` (off).
        A folder that cannot take files is skipped with one warning line on stderr (then ``compile_cache`` of
        the result is ``None``).
      cpu_devices: number of XLA CPU devices (``None``: one per available core; ``1``: leave one device).
      numerics: ``"portable"`` or ``"native"`` (:func:`pin_numerics`).

    Raises:
      ValueError: ``cpu_devices`` is not a positive int, or ``numerics`` is not one of :data:`NUMERICS`.
    """
    if cpu_devices is not None and (
        isinstance(cpu_devices, bool) or not isinstance(cpu_devices, int) or cpu_devices < 1
    ):
        raise ValueError(f"cpu_devices must be a positive int or None (one per core), got {cpu_devices!r}")
    pinned = pin_numerics(numerics)
    n_dev, note = _set_cpu_devices(cpu_devices)
    folder = _usable_cache(compile_cache)
    jax.config.update("jax_enable_compilation_cache", folder is not None)
    if folder is not None:
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return RuntimeSettings(folder, n_dev, note, os.environ.get("XLA_FLAGS", ""), pinned)


def _usable_cache(compile_cache: str | os.PathLike[str] | None | bool) -> str | None:
    """The resolved cache folder of ``compile_cache`` (created), or ``None``: off, or unusable (a folder below a
    regular file, read-only, on a full disk), which prints one warning line and runs without it."""
    if compile_cache in (False, None):
        return None
    path = default_cache_dir() if compile_cache is True else Path(compile_cache).expanduser()  # type: ignore[arg-type]
    why = jfiles.unusable_reason(path)
    if why is not None:
        jfiles.warn_unusable("compile cache", path, why)
        return None
    return str(path.resolve())


_CACHE_OPTIONS = (
    "jax_enable_compilation_cache",
    "jax_compilation_cache_dir",
    "jax_persistent_cache_min_compile_time_secs",
    "jax_persistent_cache_min_entry_size_bytes",
)


@contextlib.contextmanager
def configured(**kwargs: Any) -> Iterator[RuntimeSettings]:
    """:func:`configure` for the duration of a ``with`` block; afterwards ``XLA_FLAGS``, ``ONEDNN_MAX_CPU_ISA`` and the
    cache options are as before (the devices a backend started with stay), so calling the command line in-process
    (``jtricks.cli.main``) leaves no setting behind for the caller or the processes it starts later."""
    saved = {k: os.environ.get(k) for k in ("XLA_FLAGS", *PORTABLE_ENV)}
    options = {k: getattr(jax.config, k) for k in _CACHE_OPTIONS}
    try:
        yield configure(**kwargs)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for k, v in options.items():
            jax.config.update(k, v)


def current() -> dict[str, Any]:
    """The runtime settings in effect in this process (for the manifest): the compilation cache folder
    (``None`` when off) and the bytes it holds, and the XLA flags (the device count is the manifest's ``device``)."""
    enabled = bool(jax.config.jax_enable_compilation_cache) and bool(jax.config.jax_compilation_cache_dir)
    folder = str(jax.config.jax_compilation_cache_dir) if enabled else None
    from jtricks.engine.provenance import shareable_path

    return {
        "compile_cache": shareable_path(folder) if folder else None,
        "compile_cache_bytes": cache_size_bytes(folder) if folder else 0,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


class CompileMeter:
    """XLA compile time spent while the meter is open, from JAX's monitoring events (thread-safe).

    ``xla_s`` sums ``/jax/core/compile/backend_compile_duration`` (an XLA compile, or loading the executable
    from the persistent cache on a hit), ``programs`` counts them; ``lowering_s`` sums the tracing and lowering
    before them (``jaxpr_trace_duration``, ``jaxpr_to_mlir_module_duration``); ``cache_hits`` / ``cache_misses``
    count the persistent cache's answers.
    Use as a context manager; :meth:`record` gives the numbers for the manifest.
    """

    _COMPILE = "/jax/core/compile/backend_compile_duration"
    _LOWERING = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration")
    _EVENTS = {"/jax/compilation_cache/cache_hits": "cache_hits", "/jax/compilation_cache/cache_misses": "cache_misses"}

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.xla_s = 0.0
        self.lowering_s = 0.0
        self.programs = 0
        self.counts = {"cache_hits": 0, "cache_misses": 0}

    def _on_duration(self, event: str, duration: float, **_: Any) -> None:
        if event == self._COMPILE:
            with self._lock:
                self.xla_s += float(duration)
                self.programs += 1
        elif event in self._LOWERING:
            with self._lock:
                self.lowering_s += float(duration)

    def _on_event(self, event: str, **_: Any) -> None:
        name = self._EVENTS.get(event)
        if name is not None:
            with self._lock:
                self.counts[name] += 1

    def __enter__(self) -> CompileMeter:
        jax.monitoring.register_event_duration_secs_listener(self._on_duration)
        jax.monitoring.register_event_listener(self._on_event)
        return self

    def __exit__(self, *exc: Any) -> None:
        jax.monitoring.unregister_event_duration_listener(self._on_duration)
        jax.monitoring.unregister_event_listener(self._on_event)

    def record(self) -> dict[str, Any]:
        with self._lock:
            return {"xla_s": round(self.xla_s, 3), "programs": self.programs, **self.counts}
