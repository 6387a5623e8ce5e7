#!/usr/bin/env bash
# Opens a Spinneret kiosk address in Chromium or Chrome for an unattended Linux machine, with
# background throttling off, in a profile of its own, and restarts the browser if it exits.
# Usage: spinneret-kiosk.sh '<kiosk address from the fleet page>' [--fullscreen]
# Environment: SPINNERET_BROWSER (a browser binary), SPINNERET_PROFILE (profile folder).
set -euo pipefail

url="${1:-${SPINNERET_KIOSK_URL:-}}"
if [[ -z "$url" ]]; then
  echo "Usage: $0 '<kiosk address from the fleet page>' [--fullscreen]" >&2
  echo "The address looks like https://app.example/?kiosk=1&enroll=<token>&label=Lab%203&autostart=1" >&2
  exit 2
fi
case "$url" in
  http://* | https://*) ;;
  *) echo "Not a web address: $url (copy the whole kiosk address from the fleet page)" >&2; exit 2 ;;
esac
mode="--app=$url"
if [[ "${2:-}" == "--fullscreen" ]]; then mode="--kiosk"; fi

find_browser() {
  if [[ -n "${SPINNERET_BROWSER:-}" ]]; then echo "$SPINNERET_BROWSER"; return; fi
  for name in google-chrome google-chrome-stable chromium chromium-browser; do
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
  done
  for path in /usr/bin/chromium /usr/bin/google-chrome /snap/bin/chromium /opt/google/chrome/chrome; do
    if [[ -x "$path" ]]; then echo "$path"; return; fi
  done
}
browser="$(find_browser || true)"
if [[ -z "$browser" ]]; then
  echo "No Chrome or Chromium found. Install one (e.g. sudo apt-get install chromium) or set SPINNERET_BROWSER." >&2
  exit 1
fi

profile="${SPINNERET_PROFILE:-$HOME/.local/share/spinneret-kiosk}"
mkdir -p "$profile"
flags=(
  "--user-data-dir=$profile"
  --no-first-run
  --noerrdialogs
  --disable-background-timer-throttling
  --disable-renderer-backgrounding
  --disable-backgrounding-occluded-windows
)
# Linux builds where WebGPU is not on by default need these; harmless elsewhere.
if [[ "${SPINNERET_WEBGPU_FLAGS:-1}" == "1" ]]; then flags+=(--enable-unsafe-webgpu --enable-features=Vulkan); fi

echo "Spinneret kiosk: $browser, profile $profile"
while true; do
  if [[ "$mode" == "--kiosk" ]]; then
    "$browser" "${flags[@]}" --kiosk "$url" || true
  else
    "$browser" "${flags[@]}" "$mode" || true
  fi
  echo "The browser exited; starting it again in 10 s (Ctrl+C to stop)." >&2
  sleep 10
done
