"""scheduler_bridge: see shared/DESIGN.md (not built yet)."""
