import SpargeAttn
import SpargeFormats

// libFuzzer target: any bytes through the .npy reader. It must return a tensor or throw a
// NumpyFileError; a crash, trap, leak report or hang is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let tensor = try? NumpyFile.parse(bytes) {
        // What was read must serialize and read back to the same shape.
        guard let out = try? NumpyFile.serialized(tensor), let again = try? NumpyFile.parse(out),
              again.shape == tensor.shape, again.dtype == tensor.dtype else {
            fatalError("a parsed array did not survive a round trip")
        }
        _ = try? tensor.floats()
    }
    return 0
}
