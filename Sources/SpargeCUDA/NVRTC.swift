#if CUDA
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// NVRTC (the CUDA run-time compiler), loaded with `dlopen`: compiles the kernel source kept
/// in this package to a CUBIN for the device's compute capability.
struct NVRTC: @unchecked Sendable {
    typealias Program = OpaquePointer
    let library: DynamicLibrary
    let nvrtcVersion: @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Int32
    let nvrtcCreateProgram: @convention(c) (UnsafeMutablePointer<Program?>, UnsafePointer<CChar>, UnsafePointer<CChar>?, Int32,
                                            UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    let nvrtcCompileProgram: @convention(c) (Program, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    let nvrtcGetProgramLogSize: @convention(c) (Program, UnsafeMutablePointer<Int>) -> Int32
    let nvrtcGetProgramLog: @convention(c) (Program, UnsafeMutablePointer<CChar>) -> Int32
    let nvrtcGetCUBINSize: @convention(c) (Program, UnsafeMutablePointer<Int>) -> Int32
    let nvrtcGetCUBIN: @convention(c) (Program, UnsafeMutableRawPointer) -> Int32
    let nvrtcDestroyProgram: @convention(c) (UnsafeMutablePointer<Program?>) -> Int32
    let nvrtcGetErrorString: @convention(c) (Int32) -> UnsafePointer<CChar>?

    /// `SPARGE_NVRTC` (a path), then the versioned names on the loader's path, then the usual
    /// toolkit folders (`CUDA_HOME`, `CUDA_PATH`, /usr/local/cuda).
    static var candidates: [String] {
        let names = ["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2"]
        let dirs = (environmentPaths("CUDA_HOME") + environmentPaths("CUDA_PATH") + ["/usr/local/cuda"]).map { $0 + "/lib64/" }
        return environmentPaths("SPARGE_NVRTC") + names + dirs.flatMap { d in names.map { d + $0 } }
    }

    init() throws {
        let l = try DynamicLibrary.open("NVRTC (libnvrtc.so)", candidates: Self.candidates,
                                        hint: "install the CUDA toolkit's NVRTC, or set SPARGE_NVRTC to the path of libnvrtc.so.*")
        library = l
        nvrtcVersion = try l.function("nvrtcVersion")
        nvrtcCreateProgram = try l.function("nvrtcCreateProgram")
        nvrtcCompileProgram = try l.function("nvrtcCompileProgram")
        nvrtcGetProgramLogSize = try l.function("nvrtcGetProgramLogSize")
        nvrtcGetProgramLog = try l.function("nvrtcGetProgramLog")
        nvrtcGetCUBINSize = try l.function("nvrtcGetCUBINSize")
        nvrtcGetCUBIN = try l.function("nvrtcGetCUBIN")
        nvrtcDestroyProgram = try l.function("nvrtcDestroyProgram")
        nvrtcGetErrorString = try l.function("nvrtcGetErrorString")
    }

    var version: (major: Int, minor: Int) {
        var a: Int32 = 0, b: Int32 = 0
        _ = nvrtcVersion(&a, &b)
        return (Int(a), Int(b))
    }

    private func check(_ status: Int32, _ call: String, log: String = "") throws {
        guard status != 0 else { return }
        let message = nvrtcGetErrorString(status).map { String(cString: $0) } ?? "error \(status)"
        throw CUDAError.nvrtc(call: call, code: status, message: message, log: log)
    }

    /// Compiles `source` for `sm_<arch><suffix>` with `options` (besides the architecture) to a
    /// CUBIN; the suffix "a" selects the architecture-specific features (Hopper's `wgmma`).
    func compile(source: String, name: String, arch: Int, suffix: String = "", options: [String]) throws -> [UInt8] {
        var program: Program? = nil
        try check(nvrtcCreateProgram(&program, source, name, 0, nil, nil), "nvrtcCreateProgram")
        guard let prog = program else { throw CUDAError.nvrtc(call: "nvrtcCreateProgram", code: -1, message: "no program", log: "") }
        defer { _ = nvrtcDestroyProgram(&program) }
        // SPARGE_NVRTC_VERBOSE=1: ptxas reports registers, spills and wgmma serialization on stderr.
        let verbose = !environmentPaths("SPARGE_NVRTC_VERBOSE").isEmpty
        let all = ["--gpu-architecture=sm_\(arch)\(suffix)"] + options + (verbose ? ["--ptxas-options=-v"] : [])
        let cStrings = all.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        let pointers = cStrings.map { UnsafePointer<CChar>($0) }
        let status = pointers.withUnsafeBufferPointer { nvrtcCompileProgram(prog, Int32(all.count), $0.baseAddress) }
        var logSize = 0
        _ = nvrtcGetProgramLogSize(prog, &logSize)
        var logBytes = [CChar](repeating: 0, count: Swift.max(1, logSize))
        if logSize > 1 { _ = nvrtcGetProgramLog(prog, &logBytes) }
        let log = String(decoding: logBytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        try check(status, "nvrtcCompileProgram(\(name), sm_\(arch)\(suffix))", log: log)
        if verbose { FileHandle.standardError.write(Data("== \(name) sm_\(arch)\(suffix)\n\(log)\n".utf8)) }
        var size = 0
        try check(nvrtcGetCUBINSize(prog, &size), "nvrtcGetCUBINSize")
        var cubin = [UInt8](repeating: 0, count: size)
        try check(nvrtcGetCUBIN(prog, &cubin), "nvrtcGetCUBIN")
        // SPARGE_NVRTC_DUMP=DIR: every CUBIN also goes to DIR/<program>.sm_<arch>.cubin (for nvdisasm),
        // with its source and options beside it (<program>.cu, .options: to compile variants by hand).
        if let dir = environmentPaths("SPARGE_NVRTC_DUMP").first {
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: "\(dir)/\(name).sm_\(arch)\(suffix).cubin", contents: Data(cubin))
            _ = FileManager.default.createFile(atPath: "\(dir)/\(name)", contents: Data(source.utf8))
            _ = FileManager.default.createFile(atPath: "\(dir)/\(name).options", contents: Data(all.joined(separator: "\n").utf8))
        }
        return cubin
    }
}
#endif
