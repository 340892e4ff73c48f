"""squall's benchmarks: ``python -m bench [--only NAME] [--quick]``; see docs/benchmarks.md.

Nothing is imported here, so ``python -m bench.locust_run`` can pin its CPU
before Locust (and gevent's monkey-patching) is imported.
"""
