"""ReRAM retention over years and temperature: the NeuRRAM relaxation fits continued in log time, with Arrhenius
acceleration.

A new registered model (``reram-retention``, `ReRAMRetention`) rather than new fields on `ReRAMWan2022`: the published
NeuRRAM model stays exactly what Wan et al. measured (its numbers are unchanged by construction), while this one
shares its programming spread, relaxation draws and read noise (it subclasses it) and adds what the measurement did
not cover. With ``temperature == reference_temperature`` and t <= 2 days it returns the same numbers as
`ReRAMWan2022` for the same key.

The model, per cell programmed to G_target (x = G_target / g_max):

- thermally activated time: a cell kept at temperature T for t seconds has aged as much as one kept at the reference
  temperature T_ref for the equivalent time t_eq = t * AF, AF = exp(Ea / k_B * (1 / T_ref - 1 / T)) (Arrhenius law
  of retention bakes);
- up to t_eq = 2 days: the NeuRRAM relaxation (Wan 2022 fits at 1 s, 1 day, 2 days; see `jaxcim.devices.reram`);
- beyond 2 days, in log time L = ln(t_eq / 2 days): the spread of the level grows as
  sigma(t_eq) = sigma_2days(x) + s(x) L and its mean shifts by m(x) L, with per-level polynomials s(x), m(x). The
  defaults are the log-time slopes of IBM's CMO/HfOx ReRAM fits as published in aihwkit (``ReRamCMONoiseModel``,
  aihwkit 1.1.0 src/aihwkit/inference/noise/reram.py, ``decay_dict``: mean -0.08900 uS per e-fold of time, standard
  deviation 0.04201 uS per e-fold; measured at room temperature on CMO/HfOx 1T1R cells, Falcone et al., in review per
  aihwkit), level independent there, scaled by g_max / 40 uS like the NeuRRAM fits. Each cell keeps the standard
  normal draw of its relaxation, so its trajectory is continuous in time.

Not verified: jaxcim could not retrieve a published HfOx/TaOx retention bake (Arrhenius plot with figure number) to
check the default activation energy against: ``activation_energy = 1.0 eV`` is an assumed value inside the range
commonly quoted for oxygen-vacancy filament retention in oxide ReRAM (about 1-1.5 eV), and the reference temperature
of the room-temperature fits is taken as 298.15 K. Fit both to your own bakes (the fields are leaves: sweepable and
differentiable).

References:
  W. Wan et al., Nature 608, 504-512 (2022) (NeuRRAM relaxation fits, through aihwkit ``ReRamWan2022NoiseModel``);
  IBM aihwkit ``ReRamCMONoiseModel`` (CMO/HfOx conductance decay fits, log time).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from jaxcim.devices.base import register
from jaxcim.devices.custom import poly
from jaxcim.devices.reram import FIT_TIMES, G_MAX_REF, ReRAMWan2022, programming_sigma
from jaxcim.fields import check_range

BOLTZMANN_EV = 8.617333262e-5
"""Boltzmann constant, eV/K (CODATA 2018, exact by the 2019 SI)."""
T_FIT_END = FIT_TIMES[-1]
"""Last published NeuRRAM relaxation fit, s (2 days): the log-time continuation starts here."""
DRIFT_POLY_US = (-0.08900206,)
"""Mean shift per e-fold of time beyond 2 days, uS at g_max = 40 uS, ascending polynomial in x (aihwkit
``ReRamCMONoiseModel.decay_dict['mean']``)."""
SPREAD_POLY_US = (0.04201137,)
"""Growth of the level's standard deviation per e-fold of time beyond 2 days, uS at g_max = 40 uS, ascending polynomial
in x (aihwkit ``ReRamCMONoiseModel.decay_dict['std'][0]``)."""
ACTIVATION_ENERGY = 1.0
"""Arrhenius activation energy of retention, eV. Assumed (see the module docstring): not verified against a figure."""
REFERENCE_TEMPERATURE = 298.15
"""Temperature of the room-temperature relaxation fits, K (taken as 25 C)."""


def acceleration(temperature, activation_energy=ACTIVATION_ENERGY, reference_temperature=REFERENCE_TEMPERATURE):
    """Arrhenius acceleration factor AF = exp(Ea / k_B * (1 / T_ref - 1 / T)): t seconds at ``temperature`` (K) age a
    cell as much as t * AF seconds at ``reference_temperature`` (K). 1 at T_ref; > 1 above it."""
    return jnp.exp(activation_energy / BOLTZMANN_EV * (1.0 / reference_temperature - 1.0 / temperature))


def log_time_beyond_fits(t_eq):
    """L = ln(t_eq / 2 days) for t_eq > 2 days, else 0 (finite gradient everywhere)."""
    ratio = jnp.maximum(jnp.asarray(t_eq) / T_FIT_END, 1.0)
    return jnp.log(ratio)


def level_sigma(g_target, t_eq, g_max=G_MAX_REF, spread_poly_us=SPREAD_POLY_US):
    """Standard deviation of a programmed level t_eq seconds (at the reference temperature) after programming, S:
    the NeuRRAM fit up to 2 days, then growing by s(x) per e-fold of time (floored at the 2-day value)."""
    x = jnp.clip(g_target / g_max, 0.0, 1.0)
    growth = jnp.maximum(poly(spread_poly_us, x), 0.0) * 1e-6 * (g_max / G_MAX_REF)
    return programming_sigma(g_target, t_eq, g_max) + growth * log_time_beyond_fits(t_eq)


def level_shift(g_target, t_eq, g_max=G_MAX_REF, drift_poly_us=DRIFT_POLY_US):
    """Mean shift of a programmed level t_eq seconds (at the reference temperature) after programming, S: none up to
    2 days (the NeuRRAM fits are spreads around the target), then m(x) per e-fold of time."""
    x = jnp.clip(g_target / g_max, 0.0, 1.0)
    return poly(drift_poly_us, x) * 1e-6 * (g_max / G_MAX_REF) * log_time_beyond_fits(t_eq)


@register("reram-retention")
class ReRAMRetention(ReRAMWan2022):
    """NeuRRAM ReRAM (`ReRAMWan2022`) with retention to years and Arrhenius temperature acceleration (see the module
    docstring for the model and what is and is not verified).

    Attributes (besides those of `ReRAMWan2022`; ``temperature`` (K) is the base class's leaf):
      activation_energy: Arrhenius activation energy of retention, eV (assumed 1.0 eV; not verified).
      reference_temperature: temperature of the room-temperature fits, K (298.15 K).
      drift_poly_us: mean shift per e-fold of time beyond 2 days, uS at 40 uS, ascending polynomial in x = G / g_max
        (aihwkit CMO/HfOx fit: -0.0890).
      spread_poly_us: growth of the standard deviation per e-fold of time beyond 2 days, uS at 40 uS, ascending
        polynomial in x (aihwkit CMO/HfOx fit: 0.0420).
    """

    activation_energy: Any = ACTIVATION_ENERGY
    reference_temperature: Any = REFERENCE_TEMPERATURE
    drift_poly_us: Any = DRIFT_POLY_US
    spread_poly_us: Any = SPREAD_POLY_US

    def check(self) -> None:
        super().check()
        check_range("device", "activation_energy", self.activation_energy, 0.0)
        check_range("device", "reference_temperature", self.reference_temperature, 0.0, lo_open=True)
        for name in ("drift_poly_us", "spread_poly_us"):
            coeffs = getattr(self, name)
            if not isinstance(coeffs, tuple | list) or not coeffs:
                raise TypeError(f"device.{name} must be a non-empty tuple of numbers (ascending coefficients in uS), "
                                f"got {coeffs!r}")
            for c in coeffs:
                check_range("device", name, c)

    def equivalent_time(self, t):
        """Time at the reference temperature that ages a cell as much as ``t`` seconds at ``self.temperature``, s."""
        af = acceleration(self.temperature, self.activation_energy, self.reference_temperature)
        return jnp.asarray(t) * af

    def at_time(self, g_prog, g_target, params, t):
        t_eq = self.equivalent_time(t)
        s1 = programming_sigma(g_target, 1.0, self.g_max) / self.g_max  # units of g_max: the squares stay finite
        st = level_sigma(g_target, t_eq, self.g_max, tuple(self.spread_poly_us)) / self.g_max
        d = st * st - s1 * s1
        relax = jnp.where(d > 0, jnp.sqrt(jnp.where(d > 0, d, 1.0)), 0.0) * self.g_max
        shift = level_shift(g_target, t_eq, self.g_max, tuple(self.drift_poly_us))
        # the order of ReRAMWan2022.at_time, so that t <= 2 days at the reference temperature gives its numbers
        return jnp.maximum(g_prog + self.drift_scale * relax * params + self.drift_scale * shift, 0.0)

