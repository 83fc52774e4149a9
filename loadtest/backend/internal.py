"""The private channel between the matchmaker and its game-server processes.

Kept apart from both ends so that importing the backend package never imports the game-server
entry point (``python -m loadtest.backend.gameserver`` must be the first to load it).
"""

INTERNAL_KEY_ENV = "LOADTEST_INTERNAL_KEY"
INTERNAL_KEY_HEADER = "X-Internal-Key"
