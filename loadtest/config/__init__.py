"""What a run is asked to do: scenario files, player settings and the ``--lt-*`` options.

Nothing here does I/O beyond reading a scenario file; the runtime and the CLI read their settings
from these models and never from raw dictionaries.
"""
