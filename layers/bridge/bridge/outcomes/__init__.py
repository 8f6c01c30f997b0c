"""How a job ends and everyone hears of it: outcome events, cancel, checks, reconcile, video copy."""
