import Foundation
import SpargeSIMD

/// Storage type of a tensor's elements. Compute is always fp32.
public enum ElementType: String, Sendable, Hashable, CaseIterable {
    /// IEEE 754 single precision (`Float`), 4 bytes.
    case float32
    /// IEEE 754 half precision (`Float16`), 2 bytes: 5 exponent bits, 10 mantissa bits.
    case float16
    /// bfloat16 (``BFloat16``), 2 bytes: fp32's 8 exponent bits, 7 mantissa bits.
    case bfloat16

    /// Bytes per element.
    public var size: Int { self == .float32 ? 4 : 2 }
}

/// A read-only view of a 4-D `B,H,N,D` tensor through strides (in elements, channel stride 1)
/// of any ``ElementType``. The kernels read inputs only through views, so any layout with
/// unit stride along D (HND, NHD, a fused QKV buffer) is used in place.
struct TensorView: @unchecked Sendable {
    var base: UnsafeRawPointer
    var type: ElementType
    var batchStride: Int
    var headStride: Int
    var rowStride: Int

    init(base: UnsafeRawPointer, type: ElementType = .float32, batchStride: Int, headStride: Int, rowStride: Int) {
        self.base = base
        self.type = type
        self.batchStride = batchStride
        self.headStride = headStride
        self.rowStride = rowStride
    }

    /// A dense `B,H,N,D` fp32 tensor.
    init(contiguous base: UnsafePointer<Float>, heads: Int, rows: Int, d: Int) {
        self.init(base: UnsafeRawPointer(base), batchStride: heads * rows * d, headStride: rows * d, rowStride: d)
    }

    var isFloat32: Bool { type == .float32 }

    @inline(__always)
    func offset(_ b: Int, _ h: Int, _ n: Int) -> Int { b * batchStride + h * headStride + n * rowStride }

    /// The row itself; only for fp32 views.
    @inline(__always)
    func row(_ b: Int, _ h: Int, _ n: Int) -> UnsafePointer<Float> {
        base.assumingMemoryBound(to: Float.self) + offset(b, h, n)
    }

    /// The row's 16-bit elements as bits; only for fp16 and bf16 views.
    @inline(__always)
    func bits(_ b: Int, _ h: Int, _ n: Int) -> UnsafePointer<UInt16> {
        base.assumingMemoryBound(to: UInt16.self) + offset(b, h, n)
    }

    /// Rows from (b, h, n) on, where a kernel reads them in place (any element type).
    @inline(__always)
    func storedRows(_ b: Int, _ h: Int, _ n: Int) -> StoredRows {
        StoredRows(base: base + offset(b, h, n) * type.size, type: type, stride: rowStride)
    }

    /// The exponent bits of the element type (all ones: NaN or infinity): 0x7C00 for fp16, 0x7F80 for bf16.
    var halfExponentMask: UInt16 { type == .float16 ? 0x7C00 : 0x7F80 }

    /// The largest |x| among `count` elements of row (b, h, n), NaN ignored; 16-bit rows are
    /// scanned as bits, not widened.
    @inline(__always)
    func maxMagnitude(_ b: Int, _ h: Int, _ n: Int, count: Int) -> Float {
        if isFloat32 { return absoluteMax(row(b, h, n), count: count) }
        let m = largestMagnitudeBits(bits(b, h, n), count: count, exponentMask: halfExponentMask)
        return type == .bfloat16 ? BFloat16(bitPattern: m).float : Float(Float16(bitPattern: m))
    }

    /// Copies (and widens) `count` channels of a row into `dst`; 16-bit rows by `kernels` when
    /// given (the call's run-time set), else by the baseline loop (the same bits).
    @inline(__always)
    func load(_ b: Int, _ h: Int, _ n: Int, into dst: UnsafeMutablePointer<Float>, count: Int,
              kernels: (any TileKernels.Type)? = nil) {
        let o = offset(b, h, n)
        switch type {
        case .float32:
            dst.update(from: base.assumingMemoryBound(to: Float.self) + o, count: count)
        case .float16, .bfloat16:
            let bits = base.assumingMemoryBound(to: UInt16.self) + o
            if let kernels {
                kernels.widenHalfRow(bits, count: count, bfloat16: type == .bfloat16, into: dst)
            } else {
                widenRow(bits, count: count, bfloat16: type == .bfloat16, into: dst)
            }
        }
    }

    /// The same memory, writable (a KV cache's own buffers).
    var writable: MutableTensorView {
        MutableTensorView(base: UnsafeMutableRawPointer(mutating: base), type: type, batchStride: batchStride,
                          headStride: headStride, rowStride: rowStride)
    }

    /// The row as fp32: in place for fp32 views, else widened into `temp`.
    @inline(__always)
    func floats(_ b: Int, _ h: Int, _ n: Int, count: Int, temp: UnsafeMutablePointer<Float>,
                kernels: (any TileKernels.Type)? = nil) -> UnsafePointer<Float> {
        if type == .float32 { return row(b, h, n) }
        load(b, h, n, into: temp, count: count, kernels: kernels)
        return UnsafePointer(temp)
    }
}

/// Consecutive rows of a tensor as stored: the first row's address, the element type and
/// the row stride in elements (the P.V kernels read fp32, fp16 or bf16 value rows in place).
struct StoredRows {
    var base: UnsafeRawPointer
    var type: ElementType
    var stride: Int
}

/// The writable counterpart of ``TensorView``.
struct MutableTensorView: @unchecked Sendable {
    var base: UnsafeMutableRawPointer
    var type: ElementType
    var batchStride: Int
    var headStride: Int
    var rowStride: Int

    init(base: UnsafeMutableRawPointer, type: ElementType = .float32, batchStride: Int, headStride: Int, rowStride: Int) {
        self.base = base
        self.type = type
        self.batchStride = batchStride
        self.headStride = headStride
        self.rowStride = rowStride
    }

    init(contiguous base: UnsafeMutablePointer<Float>, heads: Int, rows: Int, d: Int) {
        self.init(base: UnsafeMutableRawPointer(base), batchStride: heads * rows * d, headStride: rows * d, rowStride: d)
    }

    /// Where the per-row log-sum-exp goes (`B,H,Nq` fp32, natural log), when asked for.
    var lse: LSEDestination? = nil

    /// Stores the log-sum-exp of row (b, h, n) from the online-softmax state of that row:
    /// `m` (base-2 units times `unit`) and `l`; a row that saw no key gets -inf.
    @inline(__always)
    func storeLSE(_ b: Int, _ h: Int, _ n: Int, m: Float, l: Float, unit: ScoreUnit) {
        guard let lse else { return }
        lse.store(b, h, n, m: m, l: l, unit: unit)
    }

    /// Stores (and narrows, rounding to nearest even) `count` fp32 values as row (b, h, n);
    /// 16-bit rows by `kernels` when given (the call's run-time set), else by the baseline loop
    /// (the same bits).
    @inline(__always)
    func store(_ b: Int, _ h: Int, _ n: Int, from src: UnsafePointer<Float>, count: Int,
               kernels: (any TileKernels.Type)? = nil) {
        let o = b * batchStride + h * headStride + n * rowStride
        switch type {
        case .float32:
            (base.assumingMemoryBound(to: Float.self) + o).update(from: src, count: count)
        case .float16, .bfloat16:
            let bits = base.assumingMemoryBound(to: UInt16.self) + o
            if let kernels {
                kernels.narrowHalfRow(src, count: count, bfloat16: type == .bfloat16, into: bits)
            } else {
                narrowRow(src, count: count, bfloat16: type == .bfloat16, into: bits)
            }
        }
    }

    /// Copies `count` elements of row (sb, sh, sn) of `source`, whose element type must be this
    /// view's, as row (b, h, n): the bits as they are.
    @inline(__always)
    func copyRow(_ b: Int, _ h: Int, _ n: Int, from source: TensorView, _ sb: Int, _ sh: Int, _ sn: Int, count: Int) {
        let size = type.size
        (base + (b * batchStride + h * headStride + n * rowStride) * size)
            .copyMemory(from: source.base + source.offset(sb, sh, sn) * size, byteCount: count * size)
    }
}

/// The destination of a call's per-row log-sum-exp, `B,H,Nq` fp32: `lse = ln sum_j e^(s_ij)`
/// over the keys the row attended, with `s_ij` the scaled score (see ``SpargeParameters``).
struct LSEDestination: @unchecked Sendable {
    var base: UnsafeMutablePointer<Float>
    var batchStride: Int
    var headStride: Int
    /// Added in base-2 units: the FP8 P.V emulation's P carries `2^fp8ProbabilityOffset`.
    var bias: Float = 0

    /// `(m * unit + log2 l + bias) * ln 2`, computed in Double; -inf when `l == 0`.
    @inline(__always)
    func store(_ b: Int, _ h: Int, _ n: Int, m: Float, l: Float, unit: ScoreUnit) {
        let value: Float
        if l > 0 && m != -.infinity {
            let log2Sum = unit.scale(Double(m)) + Foundation.log2(Double(l)) + Double(bias)
            value = Float(log2Sum * 0.693_147_180_559_945_3)
        } else {
            value = l.isNaN || m.isNaN ? .nan : -.infinity
        }
        base[b * batchStride + h * headStride + n] = value
    }
}
