"""The device mesh of a run: members x data.

This process's ``D`` devices form a 2-D mesh ``("pop", "data")`` of shape ``(D / K, K)``, ``K`` the
``data_parallel`` option (:class:`jtricks.engine.options.RunOptions`):

* the population's member axis is split over ``"pop"`` (``PartitionSpec("pop")``: each member's state lives on
  the ``K`` devices of one row of the mesh, replicated over them);
* each member's batch (its leading example axis) is split over ``"data"`` (``PartitionSpec("data")``), by a
  sharding constraint inside the step; XLA's SPMD partitioner inserts the communication (the sums of the loss
  mean, the gradients and batch norm's statistics run over the member's whole batch).

``K = 1`` is the member-only mesh (``("pop",)`` of every device); one device and ``K = 1`` is no mesh at all.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["DeviceMesh", "check_data_parallel", "device_mesh", "member_devices"]


def check_data_parallel(data_parallel: int, devices: int) -> int:
    """``data_parallel`` when it is a positive int dividing ``devices``; else a ``ValueError`` naming the
    allowed values (the divisors of ``devices``)."""
    allowed = [k for k in range(1, devices + 1) if devices % k == 0]
    ok = isinstance(data_parallel, int) and not isinstance(data_parallel, bool) and data_parallel in allowed
    if not ok:
        raise ValueError(
            f"`data_parallel` must divide this process's {devices} device(s) (devices = member shards x data "
            f"shards); allowed: {', '.join(map(str, allowed))}; got {data_parallel!r}"
        )
    return data_parallel


def member_devices(data_parallel: int = 1) -> int:
    """The devices the member axis is split over: ``local devices / data_parallel``."""
    devices = jax.local_device_count()
    return devices // check_data_parallel(data_parallel, devices)


@dataclasses.dataclass(frozen=True)
class DeviceMesh:
    """A run's mesh and the two shardings the engine places arrays with.

    Attributes:
      mesh: ``Mesh(devices.reshape(D / K, K), ("pop", "data"))``; ``Mesh(devices, ("pop",))`` when ``K = 1``.
      members: the member axis over ``"pop"`` (every population array: keys, hyperparameters, state, metrics).
      batch: one member's example axis over ``"data"``; ``None`` when ``K = 1`` (nothing to split).
    """

    mesh: Mesh
    members: NamedSharding
    batch: NamedSharding | None

    @property
    def shape(self) -> dict[str, int]:
        """``{"pop": D / K, "data": K}``."""
        shape = {str(k): int(v) for k, v in self.mesh.shape.items()}
        return {"pop": shape["pop"], "data": shape.get("data", 1)}


def device_mesh(data_parallel: int = 1) -> DeviceMesh | None:
    """This process's devices as a ``(D / K, K)`` mesh (module docstring); ``None`` with one device.

    Raises:
      ValueError: ``data_parallel`` does not divide the device count (:func:`check_data_parallel`).
    """
    devices = jax.local_devices()
    k = check_data_parallel(data_parallel, len(devices))
    if len(devices) == 1:
        return None
    if k == 1:  # the member-only mesh, as without data parallelism
        mesh = Mesh(np.array(devices), ("pop",))
        return DeviceMesh(mesh, NamedSharding(mesh, PartitionSpec("pop")), None)
    mesh = Mesh(np.array(devices).reshape(len(devices) // k, k), ("pop", "data"))
    return DeviceMesh(mesh, NamedSharding(mesh, PartitionSpec("pop")), NamedSharding(mesh, PartitionSpec("data")))
