"""Test-session environment: every cache in a private temporary folder, and no hub access.

Set before any test module imports `datasets` (which reads its cache location at import time), so tests
never read or write the user's ~/.cache and never depend on each other's leftovers.
"""

from __future__ import annotations

import os
import tempfile

_CACHE = tempfile.mkdtemp(prefix="medcorpus-test-cache-")
os.environ["HF_HOME"] = os.path.join(_CACHE, "huggingface")
os.environ["HF_DATASETS_CACHE"] = os.path.join(_CACHE, "huggingface", "datasets")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["MEDCORPUS_CACHE"] = os.path.join(_CACHE, "medcorpus")
