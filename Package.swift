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
        .library(name: "SpargeCUDA", targets: ["SpargeCUDA"]),
        .executable(name: "sparge", targets: ["sparge"]),
        .executable(name: "smollm", targets: ["smollm"]),
    ],
    traits: [
        .trait(name: "Tuned", description: "Compile the kernels for x86-64-v3 (AVX2 + FMA): much faster, needs a Haswell/Zen or newer CPU."),
        .trait(name: "CUDA", description: "The NVIDIA GPU backend (SpargeCUDA): loads libcuda and NVRTC with dlopen at run time; no CUDA headers or libraries at build time."),
    ],
    targets: [
        .target(name: "SpargeSIMD", swiftSettings: tunedFlags),
        .target(name: "SpargeAttn", dependencies: ["SpargeSIMD"], swiftSettings: tunedFlags),
        // Every source of SpargeCUDA is wrapped in `#if CUDA`: without the trait the module is empty.
        .target(name: "SpargeCUDA", dependencies: ["SpargeAttn"], swiftSettings: tunedFlags),
        .executableTarget(name: "sparge", dependencies: ["SpargeAttn", .target(name: "SpargeCUDA", condition: .when(traits: ["CUDA"]))],
                          swiftSettings: tunedFlags),
        // The example of a real model on the library (Examples/): a GGUF reader and BPE tokenizer
        // (a library, so tests and fuzz targets can use it) and the SmolLM2 program.
        .target(name: "SpargeGGUF", path: "Examples/SpargeGGUF", swiftSettings: tunedFlags),
        .executableTarget(name: "smollm", dependencies: ["SpargeAttn", "SpargeGGUF"], path: "Examples/SmolLM",
                          swiftSettings: tunedFlags),
        .testTarget(name: "SpargeGGUFTests", dependencies: ["SpargeGGUF"], path: "Examples/SpargeGGUFTests",
                    exclude: ["TokenizerExpected.json"]),
        // Counts heap allocations of plan calls in a separate process (it replaces malloc),
        // run by the tests; not a product.
        .target(name: "MallocCounter", path: "Tests/Support/MallocCounter"),
        .executableTarget(name: "sparge-allocation-check", dependencies: ["SpargeAttn", "MallocCounter"],
                          path: "Tests/Support/AllocationCheck"),
        .testTarget(name: "SpargeSIMDTests", dependencies: ["SpargeSIMD"]),
        .testTarget(name: "SpargeAttnTests", dependencies: ["SpargeAttn"]),
        .testTarget(name: "SpargeCUDATests", dependencies: ["SpargeAttn", "SpargeCUDA"]),
    ],
    swiftLanguageModes: [.v6]
)
