"""Wire <-> domain mapping: decoding never raises, it returns a failure with a reason."""
