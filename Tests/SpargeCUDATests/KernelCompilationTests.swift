#if CUDA
import Testing
import SpargeCUDA

/// The CUDA C sources compile with NVRTC for Ampere, Ada (the FP8 mma.sync kernels) and Hopper (no GPU needed; skipped only
/// when NVRTC itself cannot be loaded, with the reason printed once). One test case a program,
/// so the compilations run side by side on every core.
@Suite struct KernelCompilationTests {
    static let programs = [80, 89, 90].flatMap { SpargeCUDAKernels.programs(architecture: $0) }

    /// Why NVRTC cannot be found, or nil otherwise. Only a missing library skips: any other
    /// error loading it fails every compilation test below.
    static let missingCompiler: String? = {
        do { _ = try SpargeCUDAKernels.compilerVersion(); return nil }
        catch CUDAError.libraryNotFound(let lib, _, let hint) { return "\(lib) not found (\(hint))" }
        catch { return nil }
    }()

    @Test func compilerLoadsOrTheSkipSaysWhy() {
        if let why = Self.missingCompiler { print("SKIP kernel compilation: \(why)") }
    }

    @Test(.enabled(if: missingCompiler == nil), arguments: programs)
    func kernelCompiles(_ program: SpargeCUDAKernels.Program) throws {
        let bytes = try SpargeCUDAKernels.compile(program)
        #expect(bytes > 1000, "\(program): \(bytes) bytes")
    }

    @Test func everyArchitectureHasItsPrograms() {
        let count = { (arch: Int) in Self.programs.filter { $0.architecture == arch }.count }
        #expect(count(80) == 1 + SpargeCUDAKernels.configurations.count)
        #expect(count(89) > count(80), "FP8 programs from 8.9 on")
        #expect(count(90) > count(89) + 8, "the Hopper programs and their variants")
        #expect(Set(Self.programs.map(\.description)).count == Self.programs.count, "no program twice")
    }
}
#endif
