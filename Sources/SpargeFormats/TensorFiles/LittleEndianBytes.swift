import SpargeAttn

/// Little-endian encoding of fixed-width integers, independent of the host's
/// byte order (safetensors is little-endian by definition).
enum LittleEndianBytes {
    /// Decodes `bytes.count / T.size` values; unaligned input is fine.
    static func decode<T: FixedWidthInteger>(_ bytes: UnsafeRawBufferPointer, as type: T.Type) -> [T] {
        let size = MemoryLayout<T>.size
        let count = bytes.count / size
        var out = [T](repeating: 0, count: count)
        for i in 0..<count {
            out[i] = T(littleEndian: bytes.loadUnaligned(fromByteOffset: size * i, as: T.self))
        }
        return out
    }

    static func encode<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
        let size = MemoryLayout<T>.size
        var out = [UInt8](repeating: 0, count: size * values.count)
        out.withUnsafeMutableBytes { raw in
            for i in 0..<values.count {
                raw.storeBytes(of: values[i].littleEndian, toByteOffset: size * i, as: T.self)
            }
        }
        return out
    }

    /// Reads one little-endian value at `offset` (caller checks bounds).
    static func load<T: FixedWidthInteger>(_ bytes: UnsafeRawBufferPointer, at offset: Int, as type: T.Type) -> T {
        T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    static func append<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        var v = value.littleEndian
        withUnsafeBytes(of: &v) { out.append(contentsOf: $0) }
    }
}
