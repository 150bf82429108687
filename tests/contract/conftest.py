"""Hypothesis settings for the fast tiers: no per-example deadline (CI machines vary)."""

from hypothesis import settings

settings.register_profile("oms-fast", deadline=None)
settings.load_profile("oms-fast")
