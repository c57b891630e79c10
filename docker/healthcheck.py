"""The image's HEALTHCHECK: healthy while the bot's /healthz answers 200, or when the endpoint is turned off.

It reads the bot's own settings (`bot.config`), so what counts as "off" and which host and port
the bot listens on cannot drift apart from the bot. With `STYLEBOT_HEALTH_PORT=off` there is
nothing to ask, and a failing check would only get a working bot restarted, so it passes.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from bot.config import BotConfig, ConfigError

TIMEOUT_S = 4.0  # under the HEALTHCHECK's --timeout, so a hung bot is reported, not killed mid-check
_ANY_ADDRESS = ("0.0.0.0", "::", "")


def check() -> tuple[bool, str]:
    try:
        config = BotConfig.from_env(dotenv_path=None)
    except ConfigError as exc:
        return False, f"the bot cannot start with these settings: {exc}"
    if config.health_port is None:
        return True, "health endpoint turned off (STYLEBOT_HEALTH_PORT=off): nothing to check"
    if config.health_port == 0:
        return True, "health endpoint on a random port (STYLEBOT_HEALTH_PORT=0): cannot be checked"
    host = "127.0.0.1" if config.health_host in _ANY_ADDRESS else config.health_host
    url = f"http://{f'[{host}]' if ':' in host else host}:{config.health_port}/healthz"
    # An operator's HTTP(S)_PROXY is for Discord traffic; asking it for our own loopback would fail.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=TIMEOUT_S) as response:
            return response.status == 200, f"{url} answered {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url} answered {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url} did not answer: {exc}"


def main() -> int:
    healthy, why = check()
    print(("healthy: " if healthy else "unhealthy: ") + why)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
