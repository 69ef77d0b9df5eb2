#!/usr/bin/env bash
# Installs everything the test suite needs on Debian 12, as root: the real registry
# clients and servers the end-to-end tests drive, and staticreg with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  nginx               # serves the published tree
  skopeo podman       # registry clients
  containerd runc     # ctr pull and ctr run
  docker.io           # the Docker engine (dockerd) for docker pull/run/save
  docker-registry     # the CNCF distribution registry, a peer for the benchmark
  busybox-static      # the static binary inside the test images
  chromium            # the browse site's browser tests (driven by playwright)
  umoci zstd openssl  # image tools and the benchmark's yardsticks
  procps iproute2 ca-certificates
)

# The CDN functions run under node in the tests; any node on PATH will do.
command -v node >/dev/null 2>&1 || DEBIAN_PACKAGES+=(nodejs)

# Debian's own Python has no pip until python3-pip is installed.
python3 -m pip --version >/dev/null 2>&1 || DEBIAN_PACKAGES+=(python3-pip)

missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
    missing+=("$package")
done
if ((${#missing[@]})); then
  # Packages must not start services on a machine without an init system.
  created_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}"
  if ((created_policy)); then rm -f /usr/sbin/policy-rc.d; fi
fi

# Debian's own Python refuses pip installs outside a venv (PEP 668); this machine
# is set up for the tests, so install into it as they expect.
PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q --disable-pip-version-check \
  -e '.[test,s3]'
