import SpargeSIMD

// The GPU emulations round some inputs to fp16 as the authors' kernels take them: Q and K with
// `gpuRounding`, V with fp16 P.V. A value beyond fp16's range (|x| >= 65520 rounds to
// infinity) could never have reached the GPU kernel, and its emulation would turn it into
// inf / NaN outputs; the call throws before anything is written instead.

/// Which inputs a call rounds to fp16 (and, with the Triton quantization, whether Q's
/// INT8 scale must fit fp32: see ``tritonQueries``).
struct HalfRoundedInputs {
    var queriesAndKeys = false
    var values = false
    /// K minus its mean (smoothK), rounded to fp16 again: within range only if the difference is.
    var centeredKeys = false
    /// The Triton quantization scales Q by `softmaxScale * log2(e)` before INT8 (as the Triton
    /// kernel does in fp32): a block whose scale `max|q| * factor / 127` is beyond fp32's range
    /// cannot be stored, on the GPU or here; the call throws instead of returning garbage.
    var tritonQueries = false
    /// The call's softmax scale (nil: `1 / sqrt(D)`), for ``tritonQueries``.
    var softmaxScale: Float? = nil

    static let none = HalfRoundedInputs()

    init(queriesAndKeys: Bool = false, values: Bool = false, centeredKeys: Bool = false) {
        self.queriesAndKeys = queriesAndKeys
        self.values = values
        self.centeredKeys = centeredKeys
    }

    /// What `p` rounds.
    init(_ p: SpargeParameters) {
        self.init(queriesAndKeys: p.gpuReproduction.gpuRounding, values: p.gpuReproduction.pvNumerics == .fp16,
                  centeredKeys: p.gpuReproduction.gpuRounding && p.smoothK)
        tritonQueries = p.gpuReproduction.quantization == .triton
        softmaxScale = p.softmaxScale
    }

    /// The reason for an error on K minus its mean (the element is K's).
    static let centeredKeysReason = "gpuRounding subtracts the keys' mean (smoothK) and rounds the difference to fp16 as the GPU kernel does"

    /// The reason, for the error message.
    static func reason(name: String) -> String {
        name == "v" ? "pvNumerics .fp16 rounds V to fp16 as the GPU kernel's P.V does"
            : "gpuRounding rounds Q and K to fp16 as the GPU kernel's inputs are"
    }
}

/// The first element of a view whose magnitude rounds to infinity in fp16 (NaN ignored: the
/// non-finite policy handles it), rows widened to fp32 into `temp`.
func firstBeyondHalfRange(_ v: TensorView, batch: Int, heads: Int, tokens: Int, d: Int,
                          temp: UnsafeMutablePointer<Float>) -> (index: Int, value: Float)? {
    firstFlaggedElement(v, batch: batch, heads: heads, tokens: tokens, d: d, temp: temp) { row, d in
        guard roundToHalf(absoluteMax(row, count: d)).isInfinite else { return nil }
        return (0..<d).first { roundToHalf(row[$0]).isInfinite }
    }
}

/// The first finite element of a view that becomes infinity when stored as `type` (a KV
/// cache's 16-bit storage); nil when every value of the view's own type fits.
func firstBeyondRange(of type: ElementType, _ v: TensorView, batch: Int, heads: Int, tokens: Int, d: Int,
                      temp: UnsafeMutablePointer<Float>) -> (index: Int, value: Float)? {
    switch (type, v.type) {
    case (.float32, _), (.float16, .float16), (.bfloat16, .bfloat16), (.bfloat16, .float16): return nil
    case (.float16, _), (.bfloat16, _):
        // Infinities and NaN are the non-finite policy's to reject or keep.
        let overflows: (Float) -> Bool = type == .float16 ? { $0.isFinite && roundToHalf($0).isInfinite }
                                                          : { $0.isFinite && BFloat16($0).float.isInfinite }
        return firstFlaggedElement(v, batch: batch, heads: heads, tokens: tokens, d: d, temp: temp) { row, d in
            let largest = absoluteMax(row, count: d)   // one vector pass for the common row
            if largest.isFinite && !overflows(largest) { return nil }
            return (0..<d).first { overflows(row[$0]) }
        }
    }
}

/// The first element of Q (`B,H,Nq,D`) whose block's Triton INT8 scale could not be stored
/// in fp32: `|q| * factor / 127` beyond fp32's largest value (`factor = softmaxScale *
/// log2(e)`; the block's scale is its largest such value). Its flat index and value.
func firstBeyondTritonScaleRange(_ q: TensorView, batch: Int, heads: Int, tokens: Int, d: Int, factor: Float,
                                 temp: UnsafeMutablePointer<Float>) -> (index: Int, value: Float)? {
    let limit = Double(Float.greatestFiniteMagnitude) * 127 / Double(factor)
    guard limit < Double(Float.greatestFiniteMagnitude) else { return nil }   // no finite q reaches it
    return firstFlaggedElement(q, batch: batch, heads: heads, tokens: tokens, d: d, temp: temp) { row, d in
        guard Double(absoluteMax(row, count: d)) > limit else { return nil }
        return (0..<d).first { Double(abs(row[$0])) > limit }
    }
}

/// The first element of K (`B,Hkv,Nk,D`, already within fp16's range) whose difference from its
/// (batch, kv head)'s smoothing mean rounds to infinity in fp16, as `smoothKeyRow` rounds it
/// with `gpuRounding`: the element's flat index and the difference. The means are `means`
/// (`B*Hkv*D`: a KV cache's fixed mean), else `keySmoothingMean`'s of these keys, so the check
/// agrees with the pipeline at the boundary. A head whose largest |k| (plus, for a given mean,
/// the mean's) is too small to reach 65520, where fp16 rounds to infinity, costs one
/// vectorised pass and no allocation (`temp`: one row); only a head that could overflow gets
/// the exact check, with its scratch allocated then.
func firstCenteredKeyBeyondHalfRange(_ k: TensorView, batch: Int, kvHeads: Int, tokens: Int, d: Int,
                                     means: UnsafePointer<Float>? = nil, temp row: UnsafeMutablePointer<Float>) -> (index: Int, value: Float)? {
    guard tokens > 0, d > 0 else { return nil }
    for b in 0..<batch {
        for h in 0..<kvHeads {
            var largest: Float = 0
            for n in 0..<tokens { largest = Swift.max(largest, absoluteMax(k.floats(b, h, n, count: d, temp: row), count: d)) }
            if let means {
                // |round(k) - mean| <= round(largest) + max|mean|; 65504 leaves room for the
                // fp32 subtraction's rounding.
                let mean = means + (b * kvHeads + h) * d
                guard !(roundToHalf(largest) + absoluteMax(mean, count: d) < 65504) else { continue }
                if let found = firstCenteredKeyBeyondHalfRange(k, b, h, kvHeads: kvHeads, tokens: tokens, d: d, mean: mean, row: row) {
                    return found
                }
            } else {
                // The mean of rounded keys is at most round(largest) <= 32752 below 32752, and
                // the difference of two such values at most 65504.
                guard !(largest < 32752) else { continue }
                let mean = UnsafeMutablePointer<Float>.allocate(capacity: d), partial = UnsafeMutablePointer<Float>.allocate(capacity: d)
                let sums = UnsafeMutablePointer<Double>.allocate(capacity: d)
                defer { mean.deallocate(); partial.deallocate(); sums.deallocate() }
                keySmoothingMean(k, b: b, h: h, tokens: tokens, d: d, gpuRounding: true, into: mean, sums: sums, partial: partial, row: row)
                if let found = firstCenteredKeyBeyondHalfRange(k, b, h, kvHeads: kvHeads, tokens: tokens, d: d, mean: mean, row: row) {
                    return found
                }
            }
        }
    }
    return nil
}

/// The exact check of one (batch, kv head) against `mean`.
private func firstCenteredKeyBeyondHalfRange(_ k: TensorView, _ b: Int, _ h: Int, kvHeads: Int, tokens: Int, d: Int,
                                             mean: UnsafePointer<Float>, row: UnsafeMutablePointer<Float>) -> (index: Int, value: Float)? {
    for n in 0..<tokens {
        let x = k.floats(b, h, n, count: d, temp: row)
        for c in 0..<d {
            let difference = roundToHalf(x[c]) - mean[c]
            if roundToHalf(difference).isInfinite { return (((b * kvHeads + h) * tokens + n) * d + c, difference) }
        }
    }
    return nil
}
