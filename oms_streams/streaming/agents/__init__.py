"""Agents: short shells that hand batches to the runtime. No business decisions here."""
