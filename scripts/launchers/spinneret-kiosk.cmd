@echo off
rem Starts the Spinneret kiosk on Windows: put the kiosk address from the fleet page below,
rem then double-click this file, or place a shortcut to it in shell:startup.
set "SPINNERET_KIOSK_URL=https://app.example/?kiosk=1&enroll=PASTE-THE-TOKEN&label=PC-01&autostart=1"
powershell -NoProfile -ExecutionPolicy Bypass -File "%~dp0spinneret-kiosk.ps1" -Url "%SPINNERET_KIOSK_URL%"
