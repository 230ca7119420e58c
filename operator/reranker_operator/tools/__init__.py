"""Operator-side CLI tools: `loadtest`, `diagnose`, and the Prometheus text they read."""
