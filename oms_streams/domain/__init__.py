"""The functional core: every business decision as a pure function (standard library only)."""
