"""The poll loop of a running job: one step, the wait policies, running events, model durations."""
