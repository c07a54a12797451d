"""Named PRNG key streams.

Every source of randomness in a run draws from its own stream, derived from the run's root key by a
*stable* integer id of the stream's name::

    key_for(root, "init")    = fold_in(root, stable_id("init"))
    key_for(root, "dropout") = fold_in(root, stable_id("dropout"))

so switching a trick on or off (e.g. dropout) never reshuffles another stream: the same seed gives the same
initial weights and the same data order in every arm of an ablation. ``stable_id`` is a hash that does not
depend on the Python process (``hash(str)`` is salted per process; this is not).
"""

from __future__ import annotations

import hashlib

import jax
import jax.numpy as jnp

__all__ = ["stable_id", "key_for", "seed_key", "STREAMS"]

#: The streams the engine uses, for documentation and manifests.
STREAMS: tuple[str, ...] = ("init", "data", "dropout", "split", "averaging", "augment")


def stable_id(name: str) -> int:
    """Return a process-independent 31-bit id of ``name``: the first 4 bytes of SHA-256, masked to 31 bits."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"stream name must be a non-empty str, got {name!r}")
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:4], "big") & 0x7FFFFFFF


def key_for(root: jax.Array, name: str) -> jax.Array:
    """The key of stream ``name``: ``fold_in(root, stable_id(name))``. Works on traced / vmapped keys."""
    return jax.random.fold_in(root, stable_id(name))


def seed_key(seed: int | jax.Array) -> jax.Array:
    """Root key of the run with integer ``seed`` (a raw ``uint32[2]`` key, so it stacks and serializes plainly)."""
    if isinstance(seed, int) and seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed}")
    return jax.random.PRNGKey(jnp.asarray(seed, dtype=jnp.uint32) if not isinstance(seed, int) else seed)
