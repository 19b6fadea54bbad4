"""The energy fitting in the TorchScript program of a ``.pth`` file (:mod:`backends.pt.scripted`):
dpmodel's ``EnergyFitting.call`` (frame and atomic parameters, one net per type or one shared)."""

from typing import List, Optional

import numpy as np
import torch

from backends.pt.scripted_net import ScriptNet, tensor_of
from dpmodel.precision import numpy_dtype


class ScriptFitting(torch.nn.Module):
    """dpmodel ``EnergyFitting.call`` for TorchScript."""

    exclude_types: List[int]

    def __init__(self, fitting) -> None:
        super().__init__()
        dtype = numpy_dtype(fitting.precision)
        self.ntypes, self.dim_descrpt = fitting.ntypes, fitting.dim_descrpt
        self.numb_fparam, self.numb_aparam = fitting.numb_fparam, fitting.numb_aparam
        self.use_aparam = fitting.numb_aparam > 0 and not fitting.use_aparam_as_mask
        self.mixed_types = fitting.mixed_types
        self.exclude_types = [int(t) for t in fitting.exclude_types]
        self.has_default_fparam = fitting.default_fparam is not None
        empty = np.zeros(0, dtype)
        self.register_buffer("dtype_probe", torch.from_numpy(empty))
        self.register_buffer("fparam_avg", tensor_of(fitting.fparam_avg if fitting.numb_fparam else empty))
        self.register_buffer("fparam_inv_std", tensor_of(fitting.fparam_inv_std if fitting.numb_fparam else empty))
        self.register_buffer("aparam_avg", tensor_of(fitting.aparam_avg if fitting.numb_aparam else empty))
        self.register_buffer("aparam_inv_std", tensor_of(fitting.aparam_inv_std if fitting.numb_aparam else empty))
        default = np.zeros(fitting.numb_fparam) if fitting.default_fparam is None else fitting.default_fparam
        self.register_buffer("default_fparam", torch.from_numpy(np.asarray(default, dtype=np.float64).reshape(-1)))
        self.register_buffer("bias_atom_e", tensor_of(np.asarray(fitting.bias_atom_e, dtype=np.float64)))
        keys = [()] if fitting.mixed_types else [(t,) for t in range(fitting.ntypes)]
        self.nets = torch.nn.ModuleList([ScriptNet(fitting.nets[key]) for key in keys])

    def forward(self, descriptor: torch.Tensor, atype: torch.Tensor, fparam: Optional[torch.Tensor],
                aparam: Optional[torch.Tensor]) -> torch.Tensor:
        """Atomic energies (nf, nloc, 1), float64."""
        nf, nloc = atype.shape[0], atype.shape[1]
        dtype = self.dtype_probe.dtype
        parts = [descriptor.to(dtype)]
        if self.numb_fparam > 0:
            if fparam is None:
                if not self.has_default_fparam:
                    raise RuntimeError("this model needs fparam of shape (nframes, numb_fparam); none was given")
                fparam = self.default_fparam.to(descriptor.device)[None, :].expand(nf, self.numb_fparam)
            assert fparam is not None
            f = (fparam.reshape(nf, self.numb_fparam).to(dtype) - self.fparam_avg) * self.fparam_inv_std
            parts.append(f[:, None, :].expand(nf, nloc, self.numb_fparam))
        if self.use_aparam:
            if aparam is None:
                raise RuntimeError("this model needs aparam of shape (nframes, natoms, numb_aparam); none was given")
            a = aparam.reshape(nf, nloc, self.numb_aparam).to(dtype)
            parts.append((a - self.aparam_avg) * self.aparam_inv_std)
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        if self.mixed_types:
            energy = self.nets[0](x)
        else:  # each type's net on its own atoms only
            flat_type, rows = atype.reshape(-1), x.reshape(nf * nloc, -1)
            energy = torch.zeros([nf * nloc, 1], dtype=dtype, device=x.device)
            for t, net in enumerate(self.nets):
                index = torch.nonzero(flat_type == t)[:, 0]
                energy = energy.index_copy(0, index, net(torch.index_select(rows, 0, index)))
            energy = energy.reshape(nf, nloc, 1)
        bias = torch.index_select(self.bias_atom_e, 0, atype.reshape(-1)).reshape(nf, nloc, 1)
        energy = energy.to(torch.float64) + bias
        keep = torch.ones_like(atype, dtype=torch.bool)
        for t in self.exclude_types:
            keep = keep & (atype != t)
        return energy * keep.to(torch.float64)[:, :, None]
