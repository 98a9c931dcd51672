#!/usr/bin/env bash
# The demo job of `make run` (type demo.resize): pretends to make a thumbnail.
#
# Spool's exec handler protocol: the payload arrives on stdin as JSON, stdout is
# the result (JSON), exit status 0 completes the job, anything else fails the
# attempt with the tail of stderr as its error.
set -euo pipefail

payload=$(cat)
image=$(sed -n 's/.*"image"[[:space:]]*:[[:space:]]*"\([^"\\]*\)".*/\1/p' <<<"$payload")
if [[ -z $image ]]; then
  echo "payload needs an \"image\" string, got: $payload" >&2
  exit 2
fi

# Real work would go here; the demo takes 0.5-1.5 s so you can watch it run.
ms=$((500 + RANDOM % 1001))
sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"

if [[ $image == *.* ]]; then
  thumbnail="${image%.*}-small.${image##*.}"
else
  thumbnail="$image-small"
fi
printf '{"thumbnail":"%s","bytes":%d}\n' "$thumbnail" $((1000 + RANDOM % 9000))
