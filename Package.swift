// swift-tools-version: 6.2
import PackageDescription

// One build, several kernel sets, chosen at run time (SpargeAttn's CPU/ folder):
// - SpargeSIMD: the portable kernels (baseline x86-64 with SSE2, or arm64 with NEON);
// - SpargeSIMDAVX2 and SpargeSIMDAVX512: the same sources (their folders link to
//   Sources/SpargeSIMD), compiled for x86-64-v3 (AVX2 + FMA: Haswell, Zen and later) and for
//   x86-64-v4 with VNNI (AVX-512 F/CD/BW/DQ/VL + VNNI: Cascade Lake, Ice Lake, Sapphire Rapids,
//   Zen 4 and later). Their compiler flags sit behind the default trait `DispatchedKernels`,
//   so a package that depends on this one gets them too; without the trait (or on arm64)
//   only the portable set is built into the choice.
// Everything outside the kernel sets is compiled for the baseline and runs on any CPU.
let dispatched: Set<String> = ["DispatchedKernels"]

#if arch(x86_64)
let avx2Settings: [SwiftSetting] = [
    .define("SPARGE_AVX2"),
    .define("SPARGE_FMA", .when(traits: dispatched)),
    .unsafeFlags(["-target-cpu", "haswell"], .when(traits: dispatched)),
]
// The VNNI instruction Swift's SIMD types do not reach (see Sources/SpargeSIMDVNNI): one
// function over LLVM's intrinsic, compiled with -parse-stdlib for the AVX-512 set only.
let vnniSettings: [SwiftSetting] = [
    .unsafeFlags(["-parse-stdlib", "-target-cpu", "cascadelake"], .when(traits: dispatched)),
]
let avx512Settings: [SwiftSetting] = [
    .define("SPARGE_AVX512"),
    .define("SPARGE_FMA", .when(traits: dispatched)),
    .define("SPARGE_VNNI512", .when(traits: dispatched)),
    // Cascade Lake = x86-64-v4 (AVX-512 F, CD, BW, DQ, VL) + VNNI, and nothing newer.
    .unsafeFlags(["-target-cpu", "cascadelake"], .when(traits: dispatched)),
]
// Lane shuffles (Sources/SpargeSIMDShuffles), the same way: Swift source over LLVM's
// `shufflevector`, inlined into every kernel set.
let shuffleSettings: [SwiftSetting] = [
    .unsafeFlags(["-parse-stdlib"], .when(traits: dispatched)),
]
let kernelSets: [Target.Dependency] = ["SpargeSIMD", "SpargeSIMDAVX2", "SpargeSIMDAVX512"]
let kernelSetSupport: [Target.Dependency] = ["SpargeSIMDShuffles"]
let kernelSetTargets: [Target] = [
    .target(name: "SpargeSIMDShuffles", swiftSettings: shuffleSettings),
    .target(name: "SpargeSIMDAVX2", dependencies: kernelSetSupport, swiftSettings: avx2Settings),
    .target(name: "SpargeSIMDVNNI", swiftSettings: vnniSettings),
    .target(name: "SpargeSIMDAVX512", dependencies: kernelSetSupport + ["SpargeSIMDVNNI"], swiftSettings: avx512Settings),
]
#else
let kernelSets: [Target.Dependency] = ["SpargeSIMD"]
let kernelSetSupport: [Target.Dependency] = []
let kernelSetTargets: [Target] = []
#endif

let testSettings: [SwiftSetting] = [.unsafeFlags(["-Onone"])]

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
        .trait(name: "DispatchedKernels", description: "Also compile the kernels for AVX2 + FMA and for AVX-512 + VNNI (x86-64), chosen at run time by the CPU's features. On by default."),
        .trait(name: "CUDA", description: "The NVIDIA GPU backend (SpargeCUDA): loads libcuda and NVRTC with dlopen at run time; no CUDA headers or libraries at build time."),
        .default(enabledTraits: ["DispatchedKernels"]),
    ],
    targets: kernelSetTargets + [
        .target(name: "SpargeSIMD", dependencies: kernelSetSupport),
        .target(name: "SpargeAttn", dependencies: kernelSets),
        // Tools over the public API of SpargeAttn, apart from the algorithm:
        // tensor files (safetensors, .npy), JSON text, PNG and block-map images;
        .target(name: "SpargeFormats", dependencies: ["SpargeAttn"]),
        // per-head calibration of the hyper-parameters and the tuned-settings file;
        .target(name: "SpargeTuning", dependencies: ["SpargeAttn", "SpargeFormats"]),
        // synthetic video-like and language-model-like inputs.
        .target(name: "SpargeWorkloads", dependencies: ["SpargeAttn"]),
        // Every source of SpargeCUDA is wrapped in `#if CUDA`: without the trait the module is empty.
        .target(name: "SpargeCUDA", dependencies: ["SpargeAttn"]),
        .executableTarget(name: "sparge", dependencies: ["SpargeAttn", "SpargeFormats", "SpargeTuning", "SpargeWorkloads",
                                                        .target(name: "SpargeCUDA", condition: .when(traits: ["CUDA"]))]),
        // The example of a real model on the library (Examples/): a GGUF reader and BPE tokenizer
        // (a library, so tests and fuzz targets can use it) and the SmolLM2 program.
        .target(name: "SpargeGGUF", path: "Examples/SpargeGGUF"),
        .executableTarget(name: "smollm", dependencies: ["SpargeAttn", "SpargeFormats", "SpargeTuning", "SpargeGGUF"] + kernelSets, path: "Examples/SmolLM",
                          exclude: ["tuned-smollm2-135m.json", "layer-choice-smollm2-135m.json"]),
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
        // The two large test targets are compiled without optimization even in the README's
        // release test build: the code under test (the library, its float64 reference and the
        // test support) stays optimized, and these targets compile in half the time on two
        // cores (Zen 3: SpargeAttnTests 110 -> 52 s); the test run took 31-37 s either way.
        .testTarget(name: "SpargeAttnTests", dependencies: ["SpargeAttn", "SpargeFormats", "SpargeTuning", "SpargeWorkloads", "SpargeTestSupport"],
                    swiftSettings: testSettings),
        // The `sparge` tool run as a subprocess (it must be built: `swift test` builds it).
        .testTarget(name: "SpargeCLITests", dependencies: ["SpargeAttn", "SpargeFormats", "SpargeTuning", "SpargeWorkloads", "SpargeTestSupport"],
                    swiftSettings: testSettings),
        .testTarget(name: "SpargeCUDATests", dependencies: ["SpargeAttn", "SpargeCUDA"]),
    ],
    swiftLanguageModes: [.v6]
)
