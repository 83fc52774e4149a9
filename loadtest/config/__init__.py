"""What a run is asked to do: scenario files, player settings and the ``--lt-*`` options.

One pydantic model per format, each range and default stated once on its field:
:mod:`~loadtest.config.model` (the shared base, value types and one-line errors),
:mod:`~loadtest.config.settings` (PlayerSettings, ProbeSettings, Storm),
:mod:`~loadtest.config.scenario` (scenario TOML, whose tables are made from the settings' fields)
and :mod:`~loadtest.config.options` (the ``--lt-*`` options, made from the same fields).
Nothing here does I/O beyond reading a scenario or settings file; the runtime and the CLI read
their settings from these models and never from raw dictionaries.
"""
