"""Operator and developer tools behind the ``oms`` command: catalogue generation, simulator, watcher."""
