#!/usr/bin/env python
"""Generate reference files for the se_e2_r descriptor / energy model tests.

Run with a Python environment that has deepmd-kit 3.2.0 (and torch, optionally
tensorflow-cpu) installed -- NOT the project's own environment, e.g.::

    /work/dpvenv/bin/python tests/reference/generate.py

Everything is written below ``tests/reference/data/`` (see README.md next to this
file for the layout).  The committed tests only read the generated files; they never
import deepmd.

Sub-commands (used internally, each in its own process):

* ``generate.py dp ARGS...``   run DeePMD-kit's ``dp`` command line with ARGS
                               (after installing the cxx_op stand-in, see below);
* ``generate.py tf-eval DIR``  evaluate ``DIR/model.pb`` with the TF backend.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np


from refgen.common import OUT, find_water, install_cxx_op_stub, quiet_env
from refgen.descriptors import descriptor_cases, gen_descriptor
from refgen.models import gen_models
from refgen.tf_models import gen_tf, tf_available, tf_eval_main


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "dp":
        install_cxx_op_stub()
        from deepmd.main import main as dp_main

        dp_main(sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "tf-eval":
        tf_eval_main(sys.argv[2])
        return

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--water-data", default=None, help="directory holding data_0..3")
    ap.add_argument("--work", default="/tmp/se_r_reference_work", help="scratch dir")
    ap.add_argument("--steps", type=int, default=300, help="PT training steps")
    ap.add_argument("--tf-steps", type=int, default=200, help="TF training steps")
    ap.add_argument(
        "--reuse-training",
        action="store_true",
        help="reuse a finished PT training run (same --steps) found in --work",
    )
    ap.add_argument("--skip-models", action="store_true")
    ap.add_argument("--skip-tf", action="store_true")
    args = ap.parse_args()

    install_cxx_op_stub()
    os.environ.update({k: v for k, v in quiet_env().items() if k not in os.environ})
    import deepmd
    import torch

    water = find_water(args.water_data)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    manifest_path = OUT / "MANIFEST.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}

    manifest = {
        "generator": "tests/reference/generate.py",
        "deepmd_kit_version": deepmd.__version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": sys.version.split()[0],
        "water_data": "shared/data/water (deepmd/npy, 192 atoms, type_map O H)",
    }

    print("descriptor cases")
    if (OUT / "descriptor").exists():
        shutil.rmtree(OUT / "descriptor")
    desc_info = {}
    for i, c in enumerate(descriptor_cases(water)):
        desc_info[c["name"]] = gen_descriptor(c, water, seed=100 + i)
    manifest["descriptor_cases"] = desc_info

    if args.skip_models:
        manifest["model_cases"] = old.get("model_cases", {})
    else:
        print("model cases")
        if (OUT / "model").exists():
            shutil.rmtree(OUT / "model")
        minfo = gen_models(water, work, args.steps, args.reuse_training)
        manifest["models"] = minfo.pop("_models")
        manifest["model_cases"] = minfo
    if args.skip_models:
        manifest["models"] = old.get("models", {})

    ok, tfv = tf_available()
    if args.skip_tf:
        manifest["tensorflow_version"] = old.get("tensorflow_version")
        manifest["tf_cases"] = old.get("tf_cases", {})
    elif ok:
        print(f"tf cases (tensorflow {tfv})")
        manifest["tensorflow_version"] = tfv
        manifest["tf_cases"] = gen_tf(water, work, args.tf_steps)
    else:
        print(f"skipping TF cases: {tfv}")
        manifest["tensorflow_version"] = None
        manifest["tf_cases"] = {}
        manifest["tf_skipped_reason"] = tfv
    manifest["generation_seconds"] = round(time.time() - t_start, 1)
    manifest_path.write_text(json.dumps(manifest, indent=1, default=_json_default) + "\n")
    print(f"done in {time.time() - t_start:.0f}s")


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


if __name__ == "__main__":
    main()
