"""The jax-md style energy drives a velocity-Verlet NVE run that conserves energy."""

import jax
import jax.numpy as jnp
import numpy as np

from backends.jax import modules
from backends.jax.model import energy_fn
from systems import make_model


def _lattice_system():
    """16 atoms (two types, perturbed bcc) in a 5 Å cubic box; rcut 3.5 Å needs one image."""
    rng = np.random.default_rng(0)
    corners = np.stack(np.meshgrid(*[np.arange(2)] * 3, indexing="ij"), -1).reshape(-1, 3) * 2.5
    positions = np.concatenate([corners, corners + 1.25]) + rng.normal(scale=0.1, size=(16, 3))
    velocities = rng.normal(scale=0.3, size=(16, 3))
    return positions, velocities - velocities.mean(axis=0), np.array([0, 1] * 8), np.eye(3) * 5.0


def test_nve_velocity_verlet_conserves_energy():
    """200 steps of velocity Verlet (unit masses).

    Thresholds come from the integrator: its energy error is O(dt^2), so the largest
    deviation of E_kin + E_pot over the same time span must drop fourfold (within 25%)
    when dt is halved. A force that is not exactly -dE/dx would leave a drift that does
    not scale like dt^2. The deviation must also be tiny next to the energy exchanged
    between kinetic and potential energy, and the run must not be trivial (atoms move
    over an Å, kinetic energy changes).
    """
    positions, velocities, atype, box = _lattice_system()
    model = make_model(None, rcut=3.5, rcut_smth=1.0, sel=(30, 30), neuron=(4, 8), fitting=(8, 8))
    model.descriptor.set_stat(np.array([0.3, 0.3]), np.array([0.05, 0.05]))  # a rugged landscape
    energy = energy_fn(modules.EnergyModel.deserialize(model.serialize()), atype)

    with modules.x64():
        value_and_grad = jax.value_and_grad(lambda r: energy(r, box))

        @jax.jit
        def run(dt, nsteps, r, v):
            e_pot, grad = value_and_grad(r)
            kinetic = 0.5 * jnp.sum(v * v)
            e0 = e_pot + kinetic

            def step(_, carry):
                r, v, grad, deviation, k_min, k_max = carry
                v = v - 0.5 * dt * grad
                r = r + dt * v
                e_pot, grad = value_and_grad(r)
                v = v - 0.5 * dt * grad
                kinetic = 0.5 * jnp.sum(v * v)
                return (r, v, grad, jnp.maximum(deviation, jnp.abs(e_pot + kinetic - e0)),
                        jnp.minimum(k_min, kinetic), jnp.maximum(k_max, kinetic))

            r, _, _, deviation, k_min, k_max = jax.lax.fori_loop(0, nsteps, step,
                                                                 (r, v, grad, 0.0 * e0, kinetic, kinetic))
            return deviation, k_max - k_min, jnp.max(jnp.abs(r - r0)), e0

        r0 = jnp.asarray(positions)
        v0 = jnp.asarray(velocities)
        deviation, exchanged, moved, e0 = (float(x) for x in run(0.01, 200, r0, v0))
        half_deviation, *_ = (float(x) for x in run(0.005, 400, r0, v0))

    assert moved > 1.0 and exchanged > 0.01, "degenerate run"
    assert np.isfinite(e0)
    assert 3.0 < deviation / half_deviation < 5.0, (deviation, half_deviation)
    assert deviation < 1e-3 * exchanged, (deviation, exchanged)
