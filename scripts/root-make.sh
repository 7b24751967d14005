#!/bin/sh
# `sh scripts/root-make.sh TARGET [VAR=VALUE ...]`: the README's two commands (`demo`, `test`).
# Runs `make TARGET` in the repository as root: directly when root, else through sudo (asked for
# once, here).  On a fresh machine make itself is installed first (apt-get).
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "root-make: error: containers need root, you are $(id -un) and there is no sudo here;" \
             "run this as root (su -c 'sh scripts/root-make.sh $*')" >&2
        exit 1
    fi
    exec sudo sh scripts/root-make.sh "$@"
fi
if ! command -v make >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq make >/dev/null
fi
exec make "$@"
