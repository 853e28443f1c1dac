"""Provenance ledger: the hash-chained event log and, later, its on-chain anchoring."""
