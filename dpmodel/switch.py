r"""Smooth radial switch of the ``se_e2_r`` environment.

With :math:`u = (r - r_s)/(r_c - r_s)` clipped to :math:`[0, 1]`,

.. math:: w(r) = 1 - 10u^3 + 15u^4 - 6u^5,

so :math:`w = 1` for :math:`r \le r_s`, :math:`w = 0` for :math:`r \ge r_c`, and
:math:`w` is :math:`C^2`. Clipping uses ``where`` so gradients vanish outside
:math:`[r_s, r_c]` and stay finite everywhere.
"""

from __future__ import annotations

from dpmodel.xp import Array, array_namespace


def switch(r: Array, rcut_smth: float, rcut: float) -> tuple[Array, Array]:
    """Value and radial derivative of the switch.

    Parameters
    ----------
    r : Array, any shape, float; Å
    rcut_smth, rcut : float; Å, ``rcut_smth < rcut``

    Returns
    -------
    w, dw_dr : Arrays shaped like ``r``; dimensionless and 1/Å
    """
    xp = array_namespace(r)
    width = rcut - rcut_smth
    u = (r - rcut_smth) / width
    inside = (u > 0.0) & (u < 1.0)
    uc = xp.where(inside, u, xp.zeros_like(u))
    poly = 1.0 + uc**3 * (-6.0 * uc**2 + 15.0 * uc - 10.0)
    dpoly = (-30.0 * uc**4 + 60.0 * uc**3 - 30.0 * uc**2) / width
    one, zero = xp.ones_like(r), xp.zeros_like(r)
    w = xp.where(u <= 0.0, one, xp.where(u >= 1.0, zero, poly))
    dw = xp.where(inside, dpoly, zero)
    return w, dw
