#!/usr/bin/env bash
# Installs what Spool needs and is missing, then checks the Swift toolchain.
#
# 1. The apt packages: hiredis and libcurl headers (the C modules link them) and
#    redis-server (tests, `make run`, `make bench`). Each is checked with
#    dpkg-query first, so on a ready machine this does nothing and needs no root.
# 2. Anything missing is installed with apt-get, as root or through sudo.
# 3. Swift is not installed here: it must already work (/opt/swift is put on
#    PATH by the Makefile when it is there).
# 4. The status reader's tests drive a headless browser (Debian's `chromium`)
#    and check the server with schemathesis and Python's prometheus_client
#    (from PyPI, with python3's pip; python3-pip from apt when pip is missing).
set -euo pipefail

packages=(libhiredis-dev libcurl4-openssl-dev redis-server chromium)
python_modules=(schemathesis prometheus_client)
python_packages=(schemathesis prometheus-client)

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

if command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for pkg in "${packages[@]}"; do
    installed "$pkg" || missing+=("$pkg")
  done
  python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
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
  command -v chromium >/dev/null 2>&1 || problems+=("chromium (headless browser for the dashboard test)")
  python3 -m pip --version >/dev/null 2>&1 || problems+=("python3 with pip")
  if ((${#problems[@]} > 0)); then
    echo "deps: no dpkg here; install these yourself: ${problems[*]}" >&2
    exit 1
  fi
fi

for tool in redis-server redis-cli; do
  command -v "$tool" >/dev/null 2>&1 || { echo "deps: $tool is not on PATH" >&2; exit 1; }
done

# 4. Python packages for the status reader's tests, when an import fails.
python_missing=()
for i in "${!python_modules[@]}"; do
  python3 -c "import ${python_modules[$i]}" >/dev/null 2>&1 || python_missing+=("${python_packages[$i]}")
done
if ((${#python_missing[@]} > 0)); then
  echo "deps: installing ${python_missing[*]} (PyPI)"
  # Debian's own python3 refuses plain installs (PEP 668); ours are test tools only.
  python3 -m pip install --quiet "${python_missing[@]}" ||
    python3 -m pip install --quiet --break-system-packages "${python_missing[@]}"
fi

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
