"""The standard player, ramped up to 30 users and down to 5: sockets of stopped users must close."""

from locust import LoadTestShape

from loadtest.locustfile import GamePlayer

__all__ = ["GamePlayer", "RampDown"]


class RampDown(LoadTestShape):
    def tick(self):  # type: ignore[no-untyped-def]
        elapsed = self.get_run_time()
        if elapsed < 6:
            return 30, 30
        if elapsed < 16:
            return 5, 30
        return None
