"""Applications built on the agent runtime (the demo team, review, swarm, code)."""
