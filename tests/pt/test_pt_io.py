"""``.pth`` and ``.pt`` files: exact round trips, the registry, and a ``.pth`` run without this package."""

import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import torch

import dpmodel.io
from backends.pt import io as ptio
from dpmodel.errors import ModelFileError, UnsupportedOptionError
from dpmodel.infer import DeepPot
from dpmodel.registry import for_suffix
from dpmodel.serialization import trees_equal
from pt_helpers import assert_close, build, compare_outputs

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


def envelope(case="fparam_aparam"):
    model, system, fparam, aparam = build(case)
    data = {"model": model.serialize(), "model_def_script": {"type_map": ["T0", "T1"], "descriptor": {"sel": [20, 20]}},
            "@variables": {"min_nbor_dist": np.float64(0.987654321)}}
    return model, system, fparam, aparam, data


@pytest.mark.parametrize("suffix", [".pth", ".pt"])
def test_roundtrip_exact(tmp_path, suffix):
    _, _, _, _, data = envelope()
    path = tmp_path / f"model{suffix}"
    ptio.save(path, data)
    loaded = ptio.load(path)
    assert trees_equal(loaded, dpmodel.io.envelope(data) | {"time": loaded["time"]}) == []
    assert isinstance(loaded["@variables"]["min_nbor_dist"], np.float64)
    # file -> .dp -> file is exact, and so is a second save of the loaded dict
    dpmodel.io.save(tmp_path / "model.dp", loaded)
    ptio.save(tmp_path / f"again{suffix}", dpmodel.io.load(tmp_path / "model.dp"))
    assert trees_equal(ptio.load(tmp_path / f"again{suffix}"), loaded) == []


def test_float32_roundtrip_exact(tmp_path):
    model, *_ = build("float32")
    ptio.save(tmp_path / "m.pth", {"model": model.serialize()})
    loaded = ptio.load(tmp_path / "m.pth")
    assert trees_equal(loaded["model"], model.serialize()) == []
    assert loaded["model"]["descriptor"]["@variables"]["davg"].dtype == np.float32


def test_checkpoint_loads_with_weights_only(tmp_path):
    _, _, _, _, data = envelope("base")
    state = {"adam_step": torch.tensor(3)}
    ptio.save_checkpoint(tmp_path / "c.pt", dpmodel.io.envelope(data), state)
    raw = torch.load(tmp_path / "c.pt", weights_only=True)
    assert raw["@format"] == "dpmodel-pt-checkpoint" and isinstance(raw["envelope"], str)
    loaded, train_state = ptio.load_checkpoint(tmp_path / "c.pt")
    assert int(train_state["adam_step"]) == 3
    assert trees_equal(loaded["model"], data["model"]) == []


def test_deeppot_through_registry(tmp_path):
    model, system, fparam, aparam, data = envelope()
    path = tmp_path / "model.pth"
    ptio.save(path, data)
    assert for_suffix(path).name == "pt" and for_suffix(tmp_path / "x.pt").name == "pt"
    pot = DeepPot(path)
    assert pot.get_type_map() == ["T0", "T1"] and pot.get_dim_fparam() == 2 and pot.get_dim_aparam() == 3
    e, f, v, ae, av = pot.eval(system.coord, system.box, system.atype[0], atomic=True, fparam=fparam, aparam=aparam)
    ref = model.call(system.coord, system.atype, system.box, fparam, aparam, do_atomic_virial=True)
    for name, got in zip(["energy", "force", "virial", "atom_energy", "atom_virial"], [e, f, v, ae, av]):
        assert_close(got, ref[name], 1e-10, name)
    desc = pot.eval_descriptor(system.coord, system.box, system.atype[0])
    from dpmodel.neighbor import neighbor_data

    ext = neighbor_data(system.coord, system.atype, system.box, 4.0, [20, 20])
    assert_close(desc, model.descriptor.call(ext[0], ext[1], ext[3]), 1e-10, "descriptor")
    # the archive's own program (DeepPot's default for small systems), and the eager modules, give the same
    assert pot.evaluator.program is not None and pot.evaluator.program_max_atoms == ptio.PROGRAM_MAX_ATOMS
    program = ptio.Evaluator(path, program=True).evaluate(system.coord, system.box, system.atype, fparam, aparam, True)
    compare_outputs(program, ref, 1e-10)
    eager = ptio.Evaluator(path, program=False)
    assert eager.program is None
    compare_outputs(eager.evaluate(system.coord, system.box, system.atype, fparam, aparam, True), ref, 1e-10)


def test_default_evaluator_runs_large_systems_eagerly(tmp_path, monkeypatch):
    model, system, fparam, aparam, data = envelope()
    ptio.save(tmp_path / "model.pth", data)
    monkeypatch.setattr(ptio, "PROGRAM_MAX_ATOMS", system.atype.shape[1] - 1)  # this system counts as large
    evaluator = ptio.Evaluator(tmp_path / "model.pth")
    calls = []
    monkeypatch.setattr(evaluator, "program", lambda *args: calls.append(args))  # would record a program call
    out = evaluator.evaluate(system.coord, system.box, system.atype, fparam, aparam, True)
    assert not calls
    compare_outputs(out, model.call(system.coord, system.atype, system.box, fparam, aparam, do_atomic_virial=True), 1e-10)


def test_pth_runs_in_fresh_process_without_this_package(tmp_path):
    model, system, fparam, aparam, data = envelope()
    ptio.save(tmp_path / "model.pth", data)
    np.savez(tmp_path / "inputs.npz", coord=system.coord, atype=system.atype, box=system.box,
             fparam=fparam, aparam=aparam)
    site = os.path.dirname(os.path.dirname(torch.__file__))
    script = textwrap.dedent(f"""
        import sys
        sys.path.append({site!r})  # torch and numpy only: -S skips the editable install of this package
        for name in ("dpmodel", "backends"):
            try:
                __import__(name)
            except ImportError:
                pass
            else:
                raise SystemExit(name + " is importable")
        import json
        import numpy as np
        import torch
        extra = {{"model.json": ""}}
        program = torch.jit.load("model.pth", _extra_files=extra)
        data = json.loads(extra["model.json"])
        assert data["model"]["@class"] == "Model", data.keys()
        x = {{k: torch.tensor(v) for k, v in np.load("inputs.npz").items()}}
        # the first call runs unoptimised; the third, the profiling executor's optimised graph
        for call in range(3):
            out = program(x["coord"], x["atype"], x["box"], x["fparam"], x["aparam"], True)
            np.savez(f"outputs{{call}}.npz", **{{k: v.detach().numpy() for k, v in out.items()}})
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    result = subprocess.run([sys.executable, "-I", "-S", "-c", script], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    ref = model.call(system.coord, system.atype, system.box, fparam, aparam, do_atomic_virial=True)
    for call in (0, 2):
        compare_outputs(dict(np.load(tmp_path / f"outputs{call}.npz")), ref, 1e-10)


def test_archive_layout(tmp_path):
    _, _, _, _, data = envelope("base")
    ptio.save(tmp_path / "m.pth", data)
    with zipfile.ZipFile(tmp_path / "m.pth") as archive:
        names = archive.namelist()
        stored = [n for n in names if n.endswith("/extra/model.json")]
        assert len(stored) == 1
        assert not any(n.endswith(".pkl") and "data.pkl" not in n and "constants.pkl" not in n for n in names)
        text = archive.read(stored[0]).decode()
    assert json.loads(text)["model"]["type_map"] == ["T0", "T1"]


def test_errors_and_atomic_writes(tmp_path):
    _, _, _, _, data = envelope("base")
    path = tmp_path / "m.pth"
    ptio.save(path, data)
    before = path.read_bytes()
    bad = json.loads(json.dumps({"model_def_script": {}}))
    bad["model"] = ptio.decode(ptio.encode(data))["model"]
    bad["model"]["descriptor"]["type_one_side"] = False
    with pytest.raises(UnsupportedOptionError):
        ptio.save(path, bad)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.pth"]
    (tmp_path / "junk.pth").write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="not a TorchScript"):
        ptio.load(tmp_path / "junk.pth")
    with pytest.raises(ModelFileError, match="does not exist"):
        ptio.load(tmp_path / "missing.pt")
    torch.save({"model": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(ModelFileError, match="not a checkpoint"):
        ptio.load(tmp_path / "foreign.pt")
