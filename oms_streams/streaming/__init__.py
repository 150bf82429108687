"""The faust worker: topics, tables, agents (thin shells), followers of whole topics, the ledger runtime."""
