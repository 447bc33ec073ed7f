"""pmbrl's tested library tier: envs, world models, planners, agents, factor graphs, data.

Nothing in here imports `research/`, reads the wall clock, prints, or uses a global RNG.
"""
