<#
.SYNOPSIS
  Opens a Spinneret kiosk address in Chrome or Edge on an unattended Windows machine, with
  background throttling off, in a profile of its own, and restarts the browser if it exits.
.EXAMPLE
  powershell -ExecutionPolicy Bypass -File spinneret-kiosk.ps1 -Url "https://app.example/?kiosk=1&enroll=TOKEN&label=PC-01&autostart=1"
#>
param(
  [Parameter(Mandatory = $true)][string]$Url,
  [switch]$Fullscreen,
  [string]$Browser = $env:SPINNERET_BROWSER,
  [string]$Profile = (Join-Path $env:LOCALAPPDATA 'SpinneretKiosk')
)
$ErrorActionPreference = 'Stop'

if ($Url -notmatch '^https?://') {
  Write-Error "Not a web address: $Url (copy the whole kiosk address from the fleet page)"
  exit 2
}

if (-not $Browser) {
  $candidates = @(
    "$env:ProgramFiles\Google\Chrome\Application\chrome.exe",
    "${env:ProgramFiles(x86)}\Google\Chrome\Application\chrome.exe",
    "$env:LOCALAPPDATA\Google\Chrome\Application\chrome.exe",
    "${env:ProgramFiles(x86)}\Microsoft\Edge\Application\msedge.exe",
    "$env:ProgramFiles\Microsoft\Edge\Application\msedge.exe"
  )
  $Browser = $candidates | Where-Object { $_ -and (Test-Path $_) } | Select-Object -First 1
}
if (-not $Browser) {
  Write-Error 'No Chrome or Edge found. Install Google Chrome, or pass -Browser <path to chrome.exe>.'
  exit 1
}

New-Item -ItemType Directory -Force -Path $Profile | Out-Null
$flags = @(
  "--user-data-dir=`"$Profile`"",
  '--no-first-run',
  '--noerrdialogs',
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows'
)
if ($Fullscreen) { $flags += @('--kiosk', "`"$Url`"") } else { $flags += "--app=`"$Url`"" }

Write-Host "Spinneret kiosk: $Browser, profile $Profile"
while ($true) {
  $process = Start-Process -FilePath $Browser -ArgumentList $flags -PassThru
  $process.WaitForExit()
  Write-Warning 'The browser exited; starting it again in 10 s (Ctrl+C to stop).'
  Start-Sleep -Seconds 10
}
