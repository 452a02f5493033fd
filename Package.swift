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
        .library(name: "SpargeFormats", targets: ["SpargeFormats"]),
        .library(name: "SpargeTuning", targets: ["SpargeTuning"]),
        .library(name: "SpargeWorkloads", targets: ["SpargeWorkloads"]),
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
        // Tools over the public API of SpargeAttn, apart from the algorithm:
        // tensor files (safetensors, .npy), JSON text, PNG and block-map images;
        .target(name: "SpargeFormats", dependencies: ["SpargeAttn"], swiftSettings: tunedFlags),
        // per-head calibration of the hyper-parameters and the tuned-settings file;
        .target(name: "SpargeTuning", dependencies: ["SpargeAttn", "SpargeFormats"], swiftSettings: tunedFlags),
        // synthetic video-like and language-model-like inputs.
        .target(name: "SpargeWorkloads", dependencies: ["SpargeAttn"], swiftSettings: tunedFlags),
        // Every source of SpargeCUDA is wrapped in `#if CUDA`: without the trait the module is empty.
        .target(name: "SpargeCUDA", dependencies: ["SpargeAttn"], swiftSettings: tunedFlags),
        .executableTarget(name: "sparge", dependencies: ["SpargeAttn", "SpargeSIMD", "SpargeFormats", "SpargeTuning", "SpargeWorkloads",
                                                        .target(name: "SpargeCUDA", condition: .when(traits: ["CUDA"]))],
                          swiftSettings: tunedFlags),
        // The example of a real model on the library (Examples/): a GGUF reader and BPE tokenizer
        // (a library, so tests and fuzz targets can use it) and the SmolLM2 program.
        .target(name: "SpargeGGUF", path: "Examples/SpargeGGUF", swiftSettings: tunedFlags),
        .executableTarget(name: "smollm", dependencies: ["SpargeAttn", "SpargeFormats", "SpargeTuning", "SpargeGGUF"], path: "Examples/SmolLM",
                          swiftSettings: tunedFlags),
        .testTarget(name: "SpargeGGUFTests", dependencies: ["SpargeGGUF"], path: "Examples/SpargeGGUFTests",
                    exclude: ["TokenizerExpected.json"]),
        // Counts heap allocations of plan calls in a separate process (it replaces malloc),
        // run by the tests; not a product.
        .target(name: "MallocCounter", path: "Tests/Support/MallocCounter"),
        .executableTarget(name: "sparge-allocation-check", dependencies: ["SpargeAttn", "MallocCounter"],
                          path: "Tests/Support/AllocationCheck"),
        // What several test targets share: the golden cases, Python interoperability, a seeded
        // generator. Not a product.
        .target(name: "SpargeTestSupport", dependencies: ["SpargeAttn", "SpargeFormats"], path: "Tests/Support/TestSupport"),
        .testTarget(name: "SpargeSIMDTests", dependencies: ["SpargeSIMD"]),
        .testTarget(name: "SpargeAttnTests", dependencies: ["SpargeAttn", "SpargeFormats", "SpargeTuning", "SpargeWorkloads", "SpargeTestSupport"]),
        // The `sparge` tool run as a subprocess (it must be built: `swift test` builds it).
        .testTarget(name: "SpargeCLITests", dependencies: ["SpargeAttn", "SpargeFormats", "SpargeTuning", "SpargeWorkloads", "SpargeTestSupport"]),
        .testTarget(name: "SpargeCUDATests", dependencies: ["SpargeAttn", "SpargeCUDA"]),
    ],
    swiftLanguageModes: [.v6]
)
