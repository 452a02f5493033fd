import SpargeAttn
import SpargeFormats

// libFuzzer target: any bytes through the safetensors reader. It must return a file or
// throw a TensorFileError; a crash, trap, leak report or hang is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let file = try? SafeTensorsFile.parse(bytes) {
        // What was read must serialize and read back to the same tensors.
        guard let again = try? SafeTensorsFile.parse(file.serialized()), again.names == file.names else {
            fatalError("a parsed file did not survive a round trip")
        }
        for name in file.names { _ = try? file.tensor(name).floats() }
    }
    return 0
}
