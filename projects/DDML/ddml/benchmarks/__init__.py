"""Benchmarks of the method's cost (their command lines are in
``tools/``)."""
from .overhead import format_overhead, measure_overhead, synthetic_batch

__all__ = ['format_overhead', 'measure_overhead', 'synthetic_batch']
