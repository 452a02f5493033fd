import SpargeAttn

/// Buffer conversions between 16-bit float formats and `Float`, and their
/// little-endian byte encodings. Plain loops: the compiler vectorizes them in
/// release builds and they are easy to check.
enum HalfConversion {
    // MARK: Typed buffers

    static func floats(fromFloat16 source: [Float16]) -> [Float] {
        var out = [Float](repeating: 0, count: source.count)
        for i in 0..<source.count { out[i] = Float(source[i]) }
        return out
    }

    /// Rounds to nearest, ties to even; values beyond ±65504 become ±infinity.
    static func float16s(from source: [Float]) -> [Float16] {
        var out = [Float16](repeating: 0, count: source.count)
        for i in 0..<source.count { out[i] = Float16(source[i]) }
        return out
    }

    static func floats(fromBFloat16 source: [BFloat16]) -> [Float] {
        var out = [Float](repeating: 0, count: source.count)
        for i in 0..<source.count { out[i] = source[i].float }
        return out
    }

    /// Rounds to nearest, ties to even; NaN stays NaN.
    static func bfloat16s(from source: [Float]) -> [BFloat16] {
        var out = [BFloat16](repeating: BFloat16(bitPattern: 0), count: source.count)
        for i in 0..<source.count { out[i] = BFloat16(source[i]) }
        return out
    }

    // MARK: Little-endian bytes

    /// Decodes `bytes.count / 2` little-endian FP16 values.
    static func floats(fromFloat16Bytes bytes: UnsafeRawBufferPointer) -> [Float] {
        let count = bytes.count / 2
        var out = [Float](repeating: 0, count: count)
        for i in 0..<count {
            let bits = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            out[i] = Float(Float16(bitPattern: bits))
        }
        return out
    }

    /// Decodes `bytes.count / 2` little-endian BF16 values.
    static func floats(fromBFloat16Bytes bytes: UnsafeRawBufferPointer) -> [Float] {
        let count = bytes.count / 2
        var out = [Float](repeating: 0, count: count)
        for i in 0..<count {
            let bits = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            out[i] = Float(bitPattern: UInt32(bits) << 16)
        }
        return out
    }

    /// Rounds each value to FP16 and encodes it little-endian.
    static func float16Bytes(from source: [Float]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 2 * source.count)
        out.withUnsafeMutableBytes { raw in
            for i in 0..<source.count {
                raw.storeBytes(of: Float16(source[i]).bitPattern.littleEndian, toByteOffset: 2 * i, as: UInt16.self)
            }
        }
        return out
    }

    /// Rounds each value to BF16 and encodes it little-endian.
    static func bfloat16Bytes(from source: [Float]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 2 * source.count)
        out.withUnsafeMutableBytes { raw in
            for i in 0..<source.count {
                raw.storeBytes(of: BFloat16(source[i]).bitPattern.littleEndian, toByteOffset: 2 * i, as: UInt16.self)
            }
        }
        return out
    }
}
