// swift-tools-version: 6.2
import PackageDescription

// Two builds of the same code:
// - portable (default): baseline x86-64 / any arm64, correct everywhere;
// - tuned (`--traits Tuned`): AVX2 + FMA code for x86-64-v3 CPUs (Haswell, Zen and later).
// The trait only adds compiler flags; the sources are identical.
let tunedFlags: [SwiftSetting] = [
    .unsafeFlags(["-Xcc", "-march=x86-64-v3", "-target-cpu", "haswell"], .when(platforms: [.linux], traits: ["Tuned"])),
]

let package = Package(
    name: "SpargeAttn",
    products: [
        .library(name: "SpargeAttn", targets: ["SpargeAttn"]),
        .library(name: "SpargeSIMD", targets: ["SpargeSIMD"]),
        .executable(name: "sparge", targets: ["sparge"]),
    ],
    traits: [
        .trait(name: "Tuned", description: "Compile the kernels for x86-64-v3 (AVX2 + FMA): much faster, needs a Haswell/Zen or newer CPU."),
    ],
    targets: [
        .target(name: "SpargeSIMD", swiftSettings: tunedFlags),
        .target(name: "SpargeAttn", dependencies: ["SpargeSIMD"], swiftSettings: tunedFlags),
        .executableTarget(name: "sparge", dependencies: ["SpargeAttn"], swiftSettings: tunedFlags),
        // Counts heap allocations of plan calls in a separate process (it replaces malloc),
        // run by the tests; not a product.
        .target(name: "MallocCounter", path: "Tests/Support/MallocCounter"),
        .executableTarget(name: "sparge-allocation-check", dependencies: ["SpargeAttn", "MallocCounter"],
                          path: "Tests/Support/AllocationCheck"),
        .testTarget(name: "SpargeSIMDTests", dependencies: ["SpargeSIMD"]),
        .testTarget(name: "SpargeAttnTests", dependencies: ["SpargeAttn"]),
    ],
    swiftLanguageModes: [.v6]
)
