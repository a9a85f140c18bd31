"""fp16 and compressed-weight certification: structural policy, lint, hazards, mixed precision, edge sweeps."""
