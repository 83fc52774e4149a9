"""Probes that run beside the load: replay and forgery, the rate-limit probe, CORS, and storms.

They run in the coordinating process (the master, or the single local process) as greenlets, not
as Locust users: they must not take slots from the players, and N workers must not multiply
their rate by N.
"""
