"""The concrete actors of agent_cache. Internal."""
