"""Polynomial device: programming noise given as polynomials, or fitted from measured (target, programmed) pairs."""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxcim.devices.base import DeviceModel, register
from jaxcim.fields import check_range


def poly(coeffs, x):
    """Evaluate sum_k coeffs[k] * x**k (ascending coefficients) with Horner's rule; jit/grad friendly."""
    out = 0.0 * x
    for c in reversed(tuple(coeffs)):
        out = out * x + c
    return out


def fit_custom(
    g_target, g_programmed, *, g_min: float = 0.0, g_max: float | None = None, degree: int = 3,
    bins: int = 16, read_noise_rel: float = 0.0,
) -> Polynomial:
    """Fit a custom device from measured programming samples.

    The samples are grouped by target (the distinct targets if there are at most ``bins`` of them, else
    ``bins`` quantile bins); in each group the mean and standard deviation of G_prog - G_target are taken
    and polynomials in x = G / g_max are fitted to them, weighted by the group sizes.

    Args:
      g_target: target conductances of the measured writes, S, shape (n,).
      g_programmed: conductances read back after programming, S, shape (n,).
      g_min, g_max: the device range, S (g_max defaults to the largest target).
      degree: polynomial degree of both fits.
      bins: most groups used.
      read_noise_rel: relative read noise of the device (sigma / G), if known.

    Returns:
      A `Polynomial` device (``model = "custom"``) with the fitted ``sigma_poly`` / ``mean_poly``.
    """
    gt = np.asarray(g_target, dtype=np.float64).ravel()
    gp = np.asarray(g_programmed, dtype=np.float64).ravel()
    if gt.shape != gp.shape:
        raise ValueError(f"g_target and g_programmed must have the same length, got {gt.size} and {gp.size}")
    if gt.size < 4 * (degree + 1):
        raise ValueError(f"need at least {4 * (degree + 1)} samples to fit degree {degree}, got {gt.size}")
    if not (np.all(np.isfinite(gt)) and np.all(np.isfinite(gp))):
        raise ValueError("g_target and g_programmed must be finite")
    g_max = float(gt.max()) if g_max is None else float(g_max)
    uniq = np.unique(gt)
    if uniq.size <= bins:
        labels = np.searchsorted(uniq, gt)
        n_groups = uniq.size
    else:
        edges = np.quantile(gt, np.linspace(0, 1, bins + 1))
        labels = np.clip(np.searchsorted(edges, gt, side="right") - 1, 0, bins - 1)
        n_groups = bins
    xs, means, stds, counts = [], [], [], []
    for k in range(n_groups):
        sel = labels == k
        if sel.sum() < 2:
            continue
        err = gp[sel] - gt[sel]
        xs.append(gt[sel].mean() / g_max)
        means.append(err.mean() / g_max)
        stds.append(err.std(ddof=1) / g_max)
        counts.append(sel.sum())
    if len(xs) < degree + 1:
        raise ValueError(f"need at least {degree + 1} distinct target groups to fit degree {degree}, "
                         f"got {len(xs)}")
    w = np.sqrt(np.asarray(counts, dtype=np.float64))
    sigma_poly = np.polynomial.polynomial.polyfit(xs, stds, degree, w=w)
    mean_poly = np.polynomial.polynomial.polyfit(xs, means, degree, w=w)
    return Polynomial(
        g_min=g_min, g_max=g_max,
        sigma_poly=tuple(float(c) for c in sigma_poly), mean_poly=tuple(float(c) for c in mean_poly),
        read_noise_rel=read_noise_rel,
    )


def _check_coeffs(name: str, coeffs: Any, required: bool) -> None:
    if not isinstance(coeffs, tuple) or not all(
            isinstance(c, int | float | np.integer | np.floating) and not isinstance(c, bool) for c in coeffs):
        if isinstance(coeffs, tuple) and all(hasattr(c, "dtype") for c in coeffs):
            return  # arrays or tracers (a vmapped or learned polynomial)
        raise TypeError(f"device.{name} must be a tuple of numbers, got {coeffs!r}")
    if not all(math.isfinite(float(c)) for c in coeffs):
        raise ValueError(f"device.{name} must be a tuple of finite numbers, got {coeffs!r}")
    if required and not coeffs:
        raise ValueError(f"device.{name} is required for device.model = 'custom' (ascending coefficients of "
                         f"sigma/g_max in x = G/g_max; fit one with jaxcim.devices.fit_custom)")


@register("custom")
class Polynomial(DeviceModel):
    """A device given by polynomials in x = G_target / g_max (e.g. fitted with `fit_custom`).

    Attributes (besides those of `DeviceModel`):
      sigma_poly: programming-noise sigma / g_max, ascending coefficients (dimensionless); required.
      mean_poly: systematic programming error mean(G_prog - G_target) / g_max, ascending coefficients.
      read_noise_rel: relative read-noise sigma (sigma / G per read).
    """

    sigma_poly: Any = ()
    mean_poly: Any = ()
    read_noise_rel: Any = 0.0

    def check(self) -> None:
        _check_coeffs("sigma_poly", self.sigma_poly, required=True)
        _check_coeffs("mean_poly", self.mean_poly, required=False)
        check_range("device", "read_noise_rel", self.read_noise_rel, 0.0)

    def programming_sigma(self, g_target):
        return jnp.maximum(poly(self.sigma_poly, g_target / self.g_max), 0.0) * self.g_max

    def programming_mean(self, g_target):
        if not self.mean_poly:
            return jnp.zeros_like(g_target)
        return poly(self.mean_poly, g_target / self.g_max) * self.g_max

    def read_sigma(self, g, g_target, t):
        return jnp.abs(g) * self.read_noise_rel
