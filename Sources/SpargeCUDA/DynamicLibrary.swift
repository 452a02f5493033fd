#if CUDA
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A shared library opened with `dlopen`, kept open for the life of the process (the driver
/// must not be unloaded while a context exists).
struct DynamicLibrary: @unchecked Sendable {
    let name: String
    let handle: UnsafeMutableRawPointer

    /// Opens the first of `candidates` that loads; the error lists what was tried.
    static func open(_ name: String, candidates: [String], hint: String) throws -> DynamicLibrary {
        var tried: [String] = []
        for path in candidates {
            tried.append(path)
            if let h = dlopen(path, RTLD_NOW | RTLD_GLOBAL) { return DynamicLibrary(name: path, handle: h) }
        }
        throw CUDAError.libraryNotFound(library: name, tried: tried, hint: hint)
    }

    /// The C function `symbol` as the function type `T` (a `@convention(c)` type).
    func function<T>(_ symbol: String, as type: T.Type = T.self) throws -> T {
        guard let p = dlsym(handle, symbol) else { throw CUDAError.missingSymbol(library: name, symbol: symbol) }
        return unsafeBitCast(p, to: T.self)
    }
}

/// Values of an environment variable, split on `:`.
func environmentPaths(_ name: String) -> [String] {
    guard let v = getenv(name) else { return [] }
    return String(cString: v).split(separator: ":").map(String.init).filter { !$0.isEmpty }
}
#endif
