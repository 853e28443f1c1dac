"""Provenance: the hash-chained lineage event log that every action appends to."""
