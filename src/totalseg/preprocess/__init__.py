"""Pure preprocessing steps; each geometric step returns what it needs to be undone exactly."""
