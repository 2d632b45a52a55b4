// swift-tools-version: 5.9
// Swift bindings of lorarar's C API (runtime/include/lorarar/lorarar.h).
// NOT COMPILED where it was written (no Swift toolchain or Xcode there): see README.md.
//
// Where the native library comes from:
//  - default (apps, iOS and macOS): CLorarar.xcframework next to this file, a framework per platform wrapping
//    liblorarar (engine and ExecuTorch linked in) with the header and a `framework module CLorarar` module map;
//    scripts/make_xcframework.sh assembles it from dylibs built with CMake (README.md, "Building").
//  - LORARAR_LIB_DIR=<dir> (development, `swift test` on a Mac): a liblorarar.dylib built with CMake from the
//    repository root for macOS (e.g. build/macos/runtime). CLorarar is then a system library target whose module
//    map reads the repository's header in place.
import Foundation
import PackageDescription

let hostLibDir = ProcessInfo.processInfo.environment["LORARAR_LIB_DIR"].flatMap { $0.isEmpty ? nil : $0 }

let clorarar: Target
var linkerSettings: [LinkerSetting] = []
if let dir = hostLibDir {
    clorarar = .systemLibrary(name: "CLorarar", path: "Sources/CLorarar")
    // -L for `link "lorarar"` in the module map; rpath so the test runner finds the dylib where it was built.
    linkerSettings = [.unsafeFlags(["-L", dir, "-Xlinker", "-rpath", "-Xlinker", dir])]
} else {
    clorarar = .binaryTarget(name: "CLorarar", path: "CLorarar.xcframework")
}

let package = Package(
    name: "Lorarar",
    platforms: [.iOS(.v15), .macOS(.v13)],
    products: [
        .library(name: "Lorarar", targets: ["Lorarar"]),
    ],
    targets: [
        clorarar,
        .target(
            name: "Lorarar",
            dependencies: ["CLorarar"],
            path: "Sources/Lorarar",
            linkerSettings: linkerSettings
        ),
        .testTarget(
            name: "LorararTests",
            dependencies: ["Lorarar"],
            path: "Tests/LorararTests"
        ),
    ]
)
