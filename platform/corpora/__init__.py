"""Spatial corpora (空间米料): units, the 3D grid, ingest and the synthetic district.

The modules here other than models/actions/tasks/api are plain Python (no Django), so the
release pipeline and the benchmarks can use them without a database.
"""
