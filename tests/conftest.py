from hypothesis import settings

# The same examples on every run, so CI is deterministic.
settings.register_profile("deterministic", derandomize=True, deadline=None)
settings.load_profile("deterministic")
