#!/usr/bin/env bash
# Installs what Spool needs and is missing, then checks the Swift toolchain.
#
# 1. The apt packages: hiredis and libcurl headers (the C modules link them) and
#    redis-server (tests, `make run`, `make bench`). Each is checked with
#    dpkg-query first, so on a ready machine this does nothing and needs no root.
# 2. Anything missing is installed with apt-get, as root or through sudo.
# 3. Swift is not installed here: it must already work (/opt/swift is put on
#    PATH by the Makefile when it is there).
set -euo pipefail

packages=(libhiredis-dev libcurl4-openssl-dev redis-server)

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

if command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for pkg in "${packages[@]}"; do
    installed "$pkg" || missing+=("$pkg")
  done
  if ((${#missing[@]} > 0)); then
    if [[ $(id -u) -eq 0 ]]; then
      sudo=()
    elif command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      echo "deps: missing ${missing[*]}; run as root or install sudo" >&2
      exit 1
    fi
    echo "deps: installing ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  fi
else
  # Not Debian: check for the pieces themselves and say what to install.
  problems=()
  [[ -e /usr/include/hiredis/hiredis.h || -e /usr/local/include/hiredis/hiredis.h ]] || problems+=("hiredis headers (hiredis.h)")
  [[ -e /usr/include/curl/curl.h || -e /usr/local/include/curl/curl.h ]] || problems+=("libcurl headers (curl/curl.h)")
  command -v redis-server >/dev/null 2>&1 || problems+=("redis-server")
  command -v redis-cli >/dev/null 2>&1 || problems+=("redis-cli")
  if ((${#problems[@]} > 0)); then
    echo "deps: no dpkg here; install these yourself: ${problems[*]}" >&2
    exit 1
  fi
fi

for tool in redis-server redis-cli; do
  command -v "$tool" >/dev/null 2>&1 || { echo "deps: $tool is not on PATH" >&2; exit 1; }
done

if ! version=$(swift --version 2>&1); then
  echo "deps: no working Swift toolchain: \`swift --version\` failed." >&2
  echo "      Install Swift 6.1 or later (https://www.swift.org/install/linux/) under /opt/swift" >&2
  echo "      or put its usr/bin on PATH, then run make again." >&2
  exit 1
fi
# Package.swift needs tools version 6.1.
if [[ $version =~ Swift\ version\ ([0-9]+)\.([0-9]+) ]]; then
  major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
  if ((major < 6 || (major == 6 && minor < 1))); then
    echo "deps: Swift $major.$minor found; Spool needs Swift 6.1 or later" >&2
    exit 1
  fi
fi
echo "deps: ok ($(head -n 1 <<<"$version"))"
