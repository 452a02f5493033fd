#if CUDA
import Foundation

/// One CUDA device with its primary context and the kernels compiled for it. Opened once per
/// process and ordinal (``open(ordinal:)``); kernel programs are compiled by NVRTC on first
/// use and cached for the life of the process. Thread-safe.
public final class CUDADevice: @unchecked Sendable {
    /// Device name as the driver reports it (e.g. "NVIDIA H100 80GB HBM3").
    public let name: String
    /// Compute capability, e.g. (9, 0) for Hopper.
    public let computeCapability: (major: Int, minor: Int)
    public let multiprocessorCount: Int
    /// The driver's CUDA version, e.g. 13000.
    public let driverVersion: Int
    public let ordinal: Int
    /// Dynamic shared memory one block may opt in to.
    let maxSharedBytes: Int

    let api: DriverAPI
    let context: CUhandle
    private let lock = NSLock()
    private var nvrtc: NVRTC?
    private var functions: [String: CUhandle] = [:]
    /// Loaded modules by program key: a program's kernels share one compilation.
    private var modules: [String: CUhandle] = [:]
    /// The preparation program's kernels by name (its options never change in a process):
    /// found without building the program key of `function(_:program:source:options:)`.
    private var preparation: [String: CUhandle] = [:]

    private nonisolated(unsafe) static var opened: [Int: CUDADevice] = [:]
    private static let openLock = NSLock()

    /// The device `ordinal` (0 by default): loads the driver, checks the device, retains its
    /// primary context. Throws ``CUDAError`` when no driver or device is present.
    public static func open(ordinal: Int = 0) throws -> CUDADevice {
        openLock.lock()
        defer { openLock.unlock() }
        if let d = opened[ordinal] { return d }
        let d = try CUDADevice(ordinal: ordinal)
        opened[ordinal] = d
        return d
    }

    private init(ordinal: Int) throws {
        let api = try DriverAPI()
        self.api = api
        self.ordinal = ordinal
        try api.check(api.cuInit(0), "cuInit")
        var version: Int32 = 0
        try api.check(api.cuDriverGetVersion(&version), "cuDriverGetVersion")
        driverVersion = Int(version)
        var count: Int32 = 0
        try api.check(api.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard ordinal >= 0, ordinal < Int(count) else {
            throw CUDAError.noDevice("device \(ordinal) asked for, the driver sees \(count)")
        }
        var dev: Int32 = 0
        try api.check(api.cuDeviceGet(&dev, Int32(ordinal)), "cuDeviceGet")
        func attribute(_ a: Int32) throws -> Int {
            var v: Int32 = 0
            try api.check(api.cuDeviceGetAttribute(&v, a, dev), "cuDeviceGetAttribute(\(a))")
            return Int(v)
        }
        computeCapability = (try attribute(75), try attribute(76))  // COMPUTE_CAPABILITY_MAJOR / MINOR
        multiprocessorCount = try attribute(16)
        maxSharedBytes = try attribute(97)  // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
        var chars = [CChar](repeating: 0, count: 256)
        try api.check(api.cuDeviceGetName(&chars, 255, dev), "cuDeviceGetName")
        name = String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // Checked before the context is retained: a rejected device keeps no context.
        guard computeCapability.major >= 8 else {
            throw CUDAError.unsupported("\(name) has compute capability \(computeCapability.major).\(computeCapability.minor); the kernels need 8.0 (Ampere) or newer (INT8 and fp16 mma.sync, cp.async)")
        }
        var ctx: CUhandle? = nil
        try api.check(api.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain")
        guard let ctx else { throw CUDAError.noDevice("no primary context") }
        context = ctx
    }

    /// `count` new events with `flags`, all or none (those made before a failure are destroyed).
    func events(_ count: Int, flags: UInt32) throws -> [CUhandle] {
        var made: [CUhandle] = []
        do {
            for _ in 0..<count {
                var e: CUhandle? = nil
                try api.check(api.cuEventCreate(&e, flags), "cuEventCreate")
                guard let e else { throw CUDAError.noDevice("cuEventCreate returned no event") }
                made.append(e)
            }
        } catch {
            for e in made { _ = api.cuEventDestroy(e) }
            throw error
        }
        return made
    }

    /// Makes the device's context current on the calling thread (each call does this first).
    func makeCurrent() throws {
        try api.check(api.cuCtxSetCurrent(context), "cuCtxSetCurrent")
    }

    var architecture: Int { computeCapability.major * 10 + computeCapability.minor }

    /// NVRTC version used for the kernels, loading it if needed.
    public func compilerVersion() throws -> (major: Int, minor: Int) {
        lock.lock(); defer { lock.unlock() }
        return try loadCompiler().version
    }

    private func loadCompiler() throws -> NVRTC {
        if let n = nvrtc { return n }
        let n = try NVRTC()
        nvrtc = n
        return n
    }

    /// A preparation kernel already compiled by ``function(_:program:source:options:architectureSuffix:sharedBytes:)``, or
    /// nil; `remember` records one.
    func preparationFunction(_ name: String) -> CUhandle? {
        lock.lock(); defer { lock.unlock() }
        return preparation[name]
    }

    func rememberPreparationFunction(_ name: String, _ f: CUhandle) {
        lock.lock(); defer { lock.unlock() }
        preparation[name] = f
    }

    /// The kernel `function` of the program `source` compiled with `options` (the program
    /// compiled and loaded once per process and program key, its kernels looked up in it).
    /// `sharedBytes` raises the kernel's dynamic shared-memory limit.
    func function(_ function: String, program: String, source: @autoclosure () -> String, options: [String],
                  architectureSuffix: String = "", sharedBytes: Int = 0) throws -> CUhandle {
        lock.lock(); defer { lock.unlock() }
        let programKey = program + "|" + architectureSuffix + "|" + options.joined(separator: " ")
        let key = programKey + "|" + function
        if let f = functions[key] { return f }
        try makeCurrent()
        let module: CUhandle
        if let m = modules[programKey] {
            module = m
        } else {
            let compiler = try loadCompiler()
            let cubin = try compiler.compile(source: source(), name: program + ".cu", arch: architecture, suffix: architectureSuffix, options: options)
            var loaded: CUhandle? = nil
            try cubin.withUnsafeBytes { try api.check(api.cuModuleLoadData(&loaded, $0.baseAddress!), "cuModuleLoadData(\(program))") }
            guard let loaded else { throw CUDAError.noDevice("cuModuleLoadData returned no module") }
            modules[programKey] = loaded
            module = loaded
        }
        var f: CUhandle? = nil
        try api.check(api.cuModuleGetFunction(&f, module, function), "cuModuleGetFunction(\(function))")
        guard let f else { throw CUDAError.noDevice("no function \(function)") }
        if sharedBytes > 0 {
            try api.check(api.cuFuncSetAttribute(f, 8, Int32(sharedBytes)), "cuFuncSetAttribute(\(function), max dynamic shared memory \(sharedBytes))")
        }
        functions[key] = f
        return f
    }

    /// Launches `f` on the default stream.
    func launch(_ f: CUhandle, grid: (Int, Int), block: Int, sharedBytes: Int = 0, stream: CUhandle? = nil,
                _ arguments: KernelArguments, name: String) throws {
        try launch(f, grid: (grid.0, grid.1, 1), block: block, sharedBytes: sharedBytes, stream: stream, arguments, name: name)
    }

    /// Launches `f` on `stream` (nil: the legacy default stream). A grid or shared memory past
    /// CUDA's limits is an ``CUDAError/unsupported(_:)`` that names the kernel, not a driver error.
    func launch(_ f: CUhandle, grid: (Int, Int, Int), block: Int, sharedBytes: Int = 0, stream: CUhandle? = nil,
                _ arguments: KernelArguments, name: String) throws {
        guard (1...Int(Int32.max)).contains(grid.0), (1...65535).contains(grid.1), (1...65535).contains(grid.2) else {
            throw CUDAError.unsupported("\(name) needs a grid of \(grid.0) x \(grid.1) x \(grid.2) thread blocks; CUDA allows 1 to 2^31 - 1 x 65535 x 65535: split the batch or the heads into several calls")
        }
        guard (1...1024).contains(block), (0...maxSharedBytes).contains(sharedBytes) else {
            throw CUDAError.unsupported("\(name) needs \(block) threads and \(sharedBytes) bytes of shared memory per thread block; this device allows 1024 and \(maxSharedBytes): use larger key blocks (blockK) or shorter sequences per call")
        }
        try arguments.withPointers { p in
            try api.check(api.cuLaunchKernel(f, UInt32(grid.0), UInt32(grid.1), UInt32(grid.2), UInt32(block), 1, 1, UInt32(sharedBytes), stream, p, nil),
                          "cuLaunchKernel(\(name))")
        }
    }

    /// Waits for all work on the device and reports any asynchronous error.
    public func synchronize() throws {
        try makeCurrent()
        try api.check(api.cuCtxSynchronize(), "cuCtxSynchronize")
    }
}

/// Kernel parameters in one 8-byte slot each (what `cuLaunchKernel` reads through pointers).
struct KernelArguments {
    private var slots: [UInt64] = []
    init() {}
    mutating func add(_ v: CUdeviceptr) { slots.append(v) }
    mutating func add(_ v: Int64) { slots.append(UInt64(bitPattern: v)) }
    mutating func add(_ v: Int32) { slots.append(UInt64(UInt32(bitPattern: v))) }
    mutating func add(int v: Int) { add(Int32(truncatingIfNeeded: v)) }
    mutating func add(long v: Int) { add(Int64(v)) }
    mutating func add(_ v: Float) { slots.append(UInt64(v.bitPattern)) }

    func withPointers<R>(_ body: (UnsafeMutablePointer<UnsafeMutableRawPointer?>) throws -> R) rethrows -> R {
        var copy = slots
        return try copy.withUnsafeMutableBufferPointer { s in
            var pointers = (0..<s.count).map { UnsafeMutableRawPointer(s.baseAddress! + $0) as UnsafeMutableRawPointer? }
            return try pointers.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
        }
    }
}

/// Device memory that grows on demand and is freed with its owner (a plan reuses its buffers
/// across calls).
final class DeviceBuffer: @unchecked Sendable {
    let device: CUDADevice
    private(set) var pointer: CUdeviceptr = 0
    private(set) var capacity = 0

    init(device: CUDADevice) { self.device = device }

    /// At least `bytes` bytes (contents are not kept when it grows).
    @discardableResult
    func reserve(_ bytes: Int) throws -> CUdeviceptr {
        let need = Swift.max(bytes, 16)
        if need <= capacity { return pointer }
        free()
        var p: CUdeviceptr = 0
        try device.api.check(device.api.cuMemAlloc(&p, need), "cuMemAlloc(\(need) bytes)")
        pointer = p
        capacity = need
        return p
    }

    func upload(_ src: UnsafeRawPointer, bytes: Int) throws {
        try reserve(bytes)
        try device.api.check(device.api.cuMemcpyHtoD(pointer, src, bytes), "cuMemcpyHtoD(\(bytes) bytes)")
    }

    func download(into dst: UnsafeMutableRawPointer, bytes: Int) throws {
        try device.api.check(device.api.cuMemcpyDtoH(dst, pointer, bytes), "cuMemcpyDtoH(\(bytes) bytes)")
    }

    func array<T>(_ type: T.Type, count: Int) throws -> [T] where T: BitwiseCopyable {
        var a = [T](unsafeUninitializedCapacity: count) { _, n in n = count }
        if count > 0 { try a.withUnsafeMutableBytes { try download(into: $0.baseAddress!, bytes: count * MemoryLayout<T>.stride) } }
        return a
    }

    private func free() {
        if pointer != 0 { _ = device.api.cuMemFree(pointer) }
        pointer = 0
        capacity = 0
    }

    deinit { free() }
}
#endif
