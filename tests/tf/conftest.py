"""TensorFlow backend tests: skipped as a whole when tensorflow is not installed.

Compiled models are module-scoped fixtures: a trace costs seconds, a call milliseconds.
"""

import importlib.util
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

collect_ignore_glob = [] if importlib.util.find_spec("tensorflow") else ["test_*.py"]
