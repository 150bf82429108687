"""Hypothesis settings for the fast tiers: no per-example deadline (CI machines vary).

Locally every run explores new examples (that is how properties find bugs); in CI (``CI`` set, as
``.ci/run`` does) the examples are derived from the test itself, so a landing never depends on luck.
A failure found locally prints a ``@reproduce_failure`` blob to pin it."""

import os

from hypothesis import settings

settings.register_profile("oms-fast", deadline=None, print_blob=True)
settings.register_profile("oms-ci", deadline=None, print_blob=True, derandomize=True)
settings.load_profile("oms-ci" if os.environ.get("CI") else "oms-fast")
