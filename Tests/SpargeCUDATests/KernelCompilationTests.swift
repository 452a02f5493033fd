#if CUDA
import Testing
import SpargeCUDA

/// The CUDA C sources compile with NVRTC for Ampere, Ada (the FP8 mma.sync kernels) and Hopper (no GPU needed; skipped only
/// when NVRTC itself cannot be loaded, with the reason printed).
@Suite struct KernelCompilationTests {
    @Test(arguments: [80, 89, 90]) func kernelsCompile(architecture: Int) throws {
        do {
            let sizes = try SpargeCUDAKernels.compileAll(architecture: architecture)
            for s in sizes { #expect(s.bytes > 1000, "\(s.program) for sm_\(architecture): \(s.bytes) bytes") }
        } catch CUDAError.libraryNotFound(let lib, _, let hint) {
            print("SKIP kernel compilation: \(lib) not found (\(hint))")
        }
    }
}
#endif
