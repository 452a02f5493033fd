// V as the P.V kernels read it: fp32 rows whose length is a multiple of 8. Read in place when
// the caller's V already is that (fp32, D a multiple of 8, fp32 P.V numerics); else widened
// once per call into a buffer with rows padded to `width` floats, rounded to fp16 for
// ``PVNumerics/fp16``, or quantized to FP8 e4m3 per (batch, kv head, channel)
// (`v_scale = max|V| / fp8ValueRange`) and stored dequantized (`V8 * v_scale`) for
// ``PVNumerics/fp8``. O(N*D), small next to the attention, but a serial pass would leave all but
// one core idle: one (batch, kv head) per work item on the call's threads when V is large, cut into
// row ranges when there are fewer heads than threads.

/// Whether the kernels can read `v` in place: fp32 rows of exactly the kernels' `width`
/// (by default `d` rounded up to 8) channels.
func valuesReadInPlace(_ v: TensorView, headDim d: Int, width: Int? = nil, numerics: PVNumerics) -> Bool {
    v.isFloat32 && d == (width ?? roundUp(d, 8)) && numerics == .fp32
}

/// Widens the `B,Hkv,Nk,D` values of `v` into `buffer` (`B*Hkv*Nk*width` floats, padding
/// columns already zero) with `numerics` applied, and returns the view of it.
/// With `units`, each (batch, kv head) is divided by its power of two (``OverflowGuard``).
func widenValues(_ v: TensorView, shape s: AttentionShape, width: Int, numerics: PVNumerics = .fp32,
                 fp8ValueRange: Float = 2.25, units: UnsafePointer<Float>? = nil,
                 into buffer: UnsafeMutablePointer<Float>, threads: Int = 1) -> TensorView {
    let d = s.headDim, n = s.keyLength
    let shared = UnsafeSendable(buffer), sharedUnits = units.map { UnsafeSendable($0) }
    let workers = scanWorkers(elements: s.batch * s.kvHeads * n * d, threads: threads)
    // Row ranges of a head in parallel, except for FP8, whose scale is per channel of a whole head.
    let parts = numerics == .fp8 ? 1 : rowRanges(items: s.batch * s.kvHeads, rows: n, workers: workers)
    parallelFor(items: s.batch * s.kvHeads * parts, threads: workers) { _, item in
        let units = sharedUnits?.value
        let headIndex = item / parts
        let b = headIndex / s.kvHeads, h = headIndex % s.kvHeads
        let rows = rowRange(item % parts, of: parts, rows: n)
        let head = shared.value + headIndex * n * width
        for t in rows { v.load(b, h, t, into: head + t * width, count: d) }
        if let unit = units?[headIndex], unit != 1 {
            for t in rows { for c in 0..<d { head[t * width + c] /= unit } }
        }
        switch numerics {
        case .fp32:
            break
        case .fp16:
            for t in rows { for c in 0..<d { head[t * width + c] = roundToHalf(head[t * width + c]) } }
        case .fp8:
            for c in 0..<d {
                var amax: Float = 0
                for t in 0..<n { amax = Swift.max(amax, Swift.abs(head[t * width + c])) }
                let scale = amax / fp8ValueRange
                guard scale > 0 else { continue }
                for t in 0..<n { head[t * width + c] = roundToE4M3(head[t * width + c] / scale) * scale }
            }
        }
    }
    return TensorView(base: UnsafeRawPointer(buffer), batchStride: s.kvHeads * n * width, headStride: n * width, rowStride: width)
}
