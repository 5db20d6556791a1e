"""The ideal device: every cell lands on its target, keeps it and reads it without noise."""

from __future__ import annotations

from typing import ClassVar

from jaxcim.devices.base import DeviceModel, register


@register("ideal")
class Ideal(DeviceModel):
    """No programming noise, no drift, no read noise (faults, levels and range spread still apply)."""

    noisy_reads: ClassVar[bool] = False
