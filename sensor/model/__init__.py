"""Device models: identity, pattern of life, rarity, peer groups, state."""
