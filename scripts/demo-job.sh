#!/usr/bin/env bash
# The demo job of `make run` (type demo.resize): pretends to make a thumbnail.
#
# Spool's exec handler protocol: the payload arrives on stdin as JSON, stdout is
# the result (JSON), exit status 0 completes the job, anything else fails the
# attempt with the tail of stderr as its error. Lines "progress PERCENT MESSAGE"
# written to descriptor 3 ($SPOOL_PROGRESS_FD) are live progress.
set -euo pipefail

payload=$(cat)
image=$(sed -n 's/.*"image"[[:space:]]*:[[:space:]]*"\([^"\\]*\)".*/\1/p' <<<"$payload")
if [[ -z $image ]]; then
  echo "payload needs an \"image\" string, got: $payload" >&2
  exit 2
fi

# Real work would go here; the demo takes a few seconds in steps so you can
# watch it run.
progress() { [[ -n ${SPOOL_PROGRESS_FD:-} ]] && echo "progress $1 $2" >&"$SPOOL_PROGRESS_FD" || true; }
pause() {
  local ms=$((150 + RANDOM % 350))
  sleep "0.$(printf '%03d' "$ms")"
}
progress 0 "loading $image"; pause
progress 20 "decoding"; pause
for pct in 40 60 80; do
  progress "$pct" "resizing ($pct%)"; pause
done
progress 95 "writing thumbnail"; pause

if [[ $image == *.* ]]; then
  thumbnail="${image%.*}-small.${image##*.}"
else
  thumbnail="$image-small"
fi
printf '{"thumbnail":"%s","bytes":%d}\n' "$thumbnail" $((1000 + RANDOM % 9000))
