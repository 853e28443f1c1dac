"""Privacy budgets: (ε_total, δ) per organisation per dataset, spent and refunded atomically."""
