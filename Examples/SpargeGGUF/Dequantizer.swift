/// Dequantization of ggml blocks to `Float` (the formulas of ggml's `dequantize_row_*`).
enum Dequantizer {
    /// Dequantizes `bytes` (whole blocks of `type`) into `out`, whose count must be the element count.
    static func dequantize(_ bytes: UnsafeRawBufferPointer, type: GGMLType, into out: UnsafeMutableBufferPointer<Float>) throws {
        let blocks = out.count / type.blockElements
        guard out.count % type.blockElements == 0, bytes.count == blocks * type.blockBytes else {
            throw GGUFError.malformed("\(bytes.count) bytes do not hold \(out.count) \(type) elements")
        }
        func half(_ at: Int) -> Float { Float(Float16(bitPattern: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self).littleEndian)) }
        switch type {
        case .f32:
            for i in 0..<out.count { out[i] = Float(bitPattern: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).littleEndian) }
        case .f16:
            for i in 0..<out.count { out[i] = half(2 * i) }
        case .bf16:
            for i in 0..<out.count {
                out[i] = Float(bitPattern: UInt32(bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian) << 16)
            }
        case .q4_0:
            // x = (q - 8) * d; low nibbles are elements 0..<16, high nibbles 16..<32.
            for b in 0..<blocks {
                let base = b * 18, d = half(base)
                for j in 0..<16 {
                    let q = bytes[base + 2 + j]
                    out[b * 32 + j] = Float(Int(q & 0x0F) - 8) * d
                    out[b * 32 + j + 16] = Float(Int(q >> 4) - 8) * d
                }
            }
        case .q4_1:
            // x = q * d + m.
            for b in 0..<blocks {
                let base = b * 20, d = half(base), m = half(base + 2)
                for j in 0..<16 {
                    let q = bytes[base + 4 + j]
                    out[b * 32 + j] = Float(q & 0x0F) * d + m
                    out[b * 32 + j + 16] = Float(q >> 4) * d + m
                }
            }
        case .q8_0:
            // x = q * d, q signed.
            for b in 0..<blocks {
                let base = b * 34, d = half(base)
                for j in 0..<32 { out[b * 32 + j] = Float(Int8(bitPattern: bytes[base + 2 + j])) * d }
            }
        }
    }
}
