#if CUDA
/// Errors of the GPU backend. Every driver and NVRTC status is checked and turned into one of
/// these, with the library's own message.
public enum CUDAError: Error, Sendable, Hashable, CustomStringConvertible {
    /// `libcuda.so.1` (the NVIDIA driver) or NVRTC could not be loaded.
    case libraryNotFound(library: String, tried: [String], hint: String)
    /// A symbol is missing from a loaded library (a driver or NVRTC too old).
    case missingSymbol(library: String, symbol: String)
    /// The driver reports no CUDA device (or not the one asked for).
    case noDevice(String)
    /// A driver call failed: its name, the status code, and the driver's name and message.
    case driver(call: String, code: Int32, name: String, message: String)
    /// NVRTC failed (compilation errors carry the compiler's log).
    case nvrtc(call: String, code: Int32, message: String, log: String)
    /// The GPU backend does not implement this combination of shape and parameters.
    case unsupported(String)

    public var description: String {
        switch self {
        case .libraryNotFound(let lib, let tried, let hint):
            return "cannot load \(lib) (tried \(tried.joined(separator: ", "))); \(hint)"
        case .missingSymbol(let lib, let sym):
            return "\(lib) has no symbol \(sym): the installed version is too old for SpargeCUDA"
        case .noDevice(let m):
            return "no usable CUDA device: \(m)"
        case .driver(let call, let code, let name, let message):
            return "CUDA driver call \(call) failed with \(name) (\(code)): \(message)"
        case .nvrtc(let call, let code, let message, let log):
            return "NVRTC \(call) failed (\(code)): \(message)" + (log.isEmpty ? "" : "\n\(log)")
        case .unsupported(let m):
            return "not supported by the CUDA backend: \(m)"
        }
    }
}
#endif
