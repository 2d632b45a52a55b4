#!/usr/bin/env bash
# Assembles ios/CLorarar.xcframework from liblorarar dylibs built with CMake for iOS (README.md, "Building").
# NOT RUN where it was written (no Xcode there): read it before trusting it.
#
#   scripts/make_xcframework.sh DEVICE_DYLIB SIMULATOR_DYLIB
#
# DEVICE_DYLIB     liblorarar.dylib for iphoneos (arm64)
# SIMULATOR_DYLIB  liblorarar.dylib for iphonesimulator (arm64, or arm64 + x86_64 made with lipo)
#
# Each becomes CLorarar.framework (the dylib renamed CLorarar with install name
# @rpath/CLorarar.framework/CLorarar, lorarar.h, a `framework module CLorarar` module map, Info.plist); xcodebuild
# then puts both into CLorarar.xcframework next to Package.swift, which the Swift package's binary target reads.
# ExecuTorch's own dylibs, when liblorarar links them dynamically, must be embedded in the app as well (README.md).
set -euo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
device_dylib=$1
simulator_dylib=$2
here=$(cd "$(dirname "$0")/.." && pwd)
header="$here/../runtime/include/lorarar/lorarar.h"
version=$(sed -n 's/.*LORARAR_VERSION_STRING "\([0-9.]*\)".*/\1/p' "$here/../runtime/include/lorarar/version.h")
out="$here/CLorarar.xcframework"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for f in "$device_dylib" "$simulator_dylib" "$header"; do
  [[ -f $f ]] || { echo "error: $f: no such file" >&2; exit 2; }
done
[[ -n $version ]] || { echo "error: no LORARAR_VERSION_STRING in runtime/include/lorarar/version.h" >&2; exit 2; }

# make_framework DYLIB SLICE: a flat (iOS-style) CLorarar.framework under $work/SLICE.
make_framework() {
  local dylib=$1 slice=$2
  local fw="$work/$slice/CLorarar.framework"
  mkdir -p "$fw/Headers" "$fw/Modules"
  cp "$header" "$fw/Headers/lorarar.h"
  cat >"$fw/Modules/module.modulemap" <<'MAP'
framework module CLorarar {
  umbrella header "lorarar.h"
  export *
}
MAP
  cp "$dylib" "$fw/CLorarar"
  install_name_tool -id @rpath/CLorarar.framework/CLorarar "$fw/CLorarar"
  cat >"$fw/Info.plist" <<PLIST
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>CFBundleDevelopmentRegion</key><string>en</string>
  <key>CFBundleExecutable</key><string>CLorarar</string>
  <key>CFBundleIdentifier</key><string>ai.lorarar.CLorarar</string>
  <key>CFBundleInfoDictionaryVersion</key><string>6.0</string>
  <key>CFBundleName</key><string>CLorarar</string>
  <key>CFBundlePackageType</key><string>FMWK</string>
  <key>CFBundleShortVersionString</key><string>$version</string>
  <key>CFBundleVersion</key><string>$version</string>
  <key>MinimumOSVersion</key><string>15.0</string>
</dict>
</plist>
PLIST
}

make_framework "$device_dylib" ios
make_framework "$simulator_dylib" ios-simulator
rm -rf "$out"
xcodebuild -create-xcframework \
  -framework "$work/ios/CLorarar.framework" \
  -framework "$work/ios-simulator/CLorarar.framework" \
  -output "$out"
echo "wrote $out"
