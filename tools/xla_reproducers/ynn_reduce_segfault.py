"""Reproducer for an XLA CPU crash (jax/jaxlib 0.10.2, x86-64): SIGSEGV in a YNNPACK reduce fusion.

    python ynn_reduce_segfault.py            # Segmentation fault (exit 139)
    XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-LIBRARY_FUSION_TYPE_REDUCE python ynn_reduce_segfault.py

Vmapped twice (16 instances, 2 read times), an array scaled by a per-instance, per-tile operand is summed over
its size-2 tile axis with a per-instance weight (an einsum). XLA fuses the scale, the reduction and the weight into
one YNNPACK reduce fusion, which crashes. Dividing by the operand instead of adding to the input first, or
dropping the per-instance weight, gives a program that runs. jaxcim sums tile partial sums with explicit adds
(`jaxcim.core`), which XLA does not turn into this fusion.
"""

import jax
import jax.numpy as jnp

currents = jnp.ones((2, 8, 2, 256))  # (times, batch, tiles, columns)
full_scale = jnp.ones((16, 1, 2, 1))  # (instances, slices, tiles, col_tiles)
coeffs = jnp.ones((16, 1))  # (instances, slices)


@jax.jit
def f(currents, full_scale, coeffs):
    def instance(fs, c):
        def at(i):
            d = (i[None, :, None, :, None, :] + 1.0) * fs[None, None, ..., None]  # (k, b, s, t, c, j)
            return jnp.einsum("k,s,kbstcj->bcj", jnp.ones((1,)), c, d, precision=jax.lax.Precision.HIGHEST)

        return jax.vmap(at)(currents)

    return jax.vmap(instance)(full_scale, coeffs)


print(float(f(currents, full_scale, coeffs).sum()))
