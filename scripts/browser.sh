#!/usr/bin/env bash
# Installs Debian's Chromium for the report's browser test (make test only: the drill itself
# never needs a browser). Playwright drives /usr/bin/chromium; it never downloads one.
set -euo pipefail

if [ ! -x /usr/bin/chromium ]; then
    echo "browser: installing Chromium from Debian (the report's browser test)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
