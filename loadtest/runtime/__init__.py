"""What runs inside a Locust process: the plugin, the per-process hub, the simulated player and
the WebSocket engine. Nothing here imports the CLI; results leave through :mod:`loadtest.results`.
"""
