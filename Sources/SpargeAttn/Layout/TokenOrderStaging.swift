// How an entry point runs in a token order: the caller's Q, K and V (any layout and element
// type, already validated) are gathered into dense HND copies of the same element type, the
// call runs on those, and its output rows and log-sum-exps are scattered back to the caller's
// positions. Keeping the element type makes the call bit-identical to permuting by hand. An
// attention mask is permuted the same way (rows and columns), into bytes the staging keeps.

/// The token-order copies of one call: allocated per call by the one-shot entry points and
/// once per ``SpargeWorkspace`` by a plan with a token order (so plan calls allocate nothing).
final class TokenOrderStaging: @unchecked Sendable {
    // @unchecked: written only by the call that owns it (a workspace admits one call at a time).
    let q: RawBuffer<UInt8>        // B,H,N,D, up to 4 bytes an element
    let k: RawBuffer<UInt8>        // B,Hkv,N,D
    let v: RawBuffer<UInt8>        // B,Hkv,N,D
    let output: RawBuffer<UInt8>   // B,H,N,D
    let lse: RawBuffer<Float>      // B,H,N
    let keyValid: RawBuffer<UInt8> // B,N
    /// The attention mask in token order (1 or B, N, N), made by the first call with a mask
    /// and kept for the later ones (grown when a mask with more batch entries comes), so a
    /// plan's masked calls do not allocate per call. Sized by the mask, not by B, since a
    /// shared mask is one N x N.
    private var mask: RawBuffer<UInt8>?

    /// Room for a call of `shape` (`queryLength == keyLength`) in any element type.
    init(shape s: AttentionShape) {
        let widest = ElementType.float32.size
        q = RawBuffer(uninitializedCount: s.queryElements * widest)
        k = RawBuffer(uninitializedCount: s.keyElements * widest)
        v = RawBuffer(uninitializedCount: s.keyElements * widest)
        output = RawBuffer(uninitializedCount: s.queryElements * widest)
        lse = RawBuffer(uninitializedCount: s.batch * s.heads * s.queryLength)
        keyValid = RawBuffer(uninitializedCount: s.batch * s.keyLength)
    }

    /// Room for `count` mask bytes.
    func maskBytes(_ count: Int) -> UnsafeMutablePointer<UInt8> {
        if let mask, mask.count >= count { return mask.pointer }
        let grown = RawBuffer<UInt8>(uninitializedCount: count)
        mask = grown
        return grown.pointer
    }
}

/// Runs `body` on `views` seen in `order` (validated for `shape` by the caller) with the key
/// padding bytes and the attention mask in the same order, then scatters the output and
/// log-sum-exp back; with no order or the identity, `body` runs on the caller's views and
/// mask. `staging` nil: allocated here.
func withTokenOrder<R>(_ order: TokenOrder?, _ views: CallViews, shape s: AttentionShape, keyPadding: KeyPaddingMask?,
                       attentionMask: AttentionMask? = nil, staging: TokenOrderStaging?, threads: Int,
                       _ body: (CallViews, UnsafePointer<UInt8>?, PairMaskView?) throws -> R) rethrows -> R {
    guard let order, !order.isIdentity else {
        return try withKeyValid(keyPadding) { keyValid in try withPairMask(attentionMask) { try body(views, keyValid, $0) } }
    }
    let buffers = staging ?? TokenOrderStaging(shape: s)
    return try order.forward.withUnsafeBufferPointer { forward in
        let toCaller = forward.baseAddress!
        let n = s.queryLength, d = s.headDim
        func gathered(_ x: TensorView, into buffer: RawBuffer<UInt8>, heads: Int) -> TensorView {
            let ordered = TensorView(base: UnsafeRawPointer(buffer.pointer), type: x.type, batchStride: heads * n * d,
                                     headStride: n * d, rowStride: d)
            let bytes = d * x.type.size, destination = UnsafeMutableRawPointer(buffer.pointer)
            parallelFor(items: s.batch * heads, threads: threads) { _, item in
                let b = item / heads, h = item % heads
                for p in 0..<n {
                    (destination + ordered.offset(b, h, p) * x.type.size)
                        .copyMemory(from: x.base + x.offset(b, h, Int(toCaller[p])) * x.type.size, byteCount: bytes)
                }
            }
            return ordered
        }
        var ordered = views
        ordered.q = gathered(views.q, into: buffers.q, heads: s.heads)
        ordered.k = gathered(views.k, into: buffers.k, heads: s.kvHeads)
        // Stage 1 alone passes the keys as the values too: one copy serves both.
        let sameAsKeys = views.v.base == views.k.base && views.v.type == views.k.type && views.v.batchStride == views.k.batchStride
            && views.v.headStride == views.k.headStride && views.v.rowStride == views.k.rowStride
        ordered.v = sameAsKeys ? ordered.k : gathered(views.v, into: buffers.v, heads: s.kvHeads)
        if let out = views.output {
            var o = MutableTensorView(base: UnsafeMutableRawPointer(buffers.output.pointer), type: out.type,
                                      batchStride: s.heads * n * d, headStride: n * d, rowStride: d)
            if let lse = out.lse {
                o.lse = LSEDestination(base: buffers.lse.pointer, batchStride: s.heads * n, headStride: n, bias: lse.bias)
            }
            ordered.output = o
        }
        let keyValid: UnsafePointer<UInt8>? = keyPadding.map { mask in
            mask.bytes.withUnsafeBufferPointer { caller in
                for b in 0..<s.batch {
                    for p in 0..<n { buffers.keyValid.pointer[b * n + p] = caller[b * n + Int(toCaller[p])] }
                }
            }
            return UnsafePointer(buffers.keyValid.pointer)
        }
        // Pair (i, j) in token order is pair (toCaller[i], toCaller[j]) of the caller's mask.
        let pairMask: PairMaskView? = attentionMask.map { mask in
            let bytes = buffers.maskBytes(mask.batch * n * n)
            mask.bytes.withUnsafeBufferPointer { caller in
                let source = caller.baseAddress!
                parallelFor(items: mask.batch * n, threads: threads) { _, row in
                    let from = source + (row / n * n + Int(toCaller[row % n])) * n, to = bytes + row * n
                    for j in 0..<n { to[j] = from[Int(toCaller[j])] }
                }
            }
            return PairMaskView(allowed: UnsafePointer(bytes), batchStride: mask.batch == 1 ? 0 : n * n, queryLength: n, keyLength: n)
        }
        let result = try body(ordered, keyValid, pairMask)
        if let out = views.output, let o = ordered.output {
            let bytes = d * out.type.size
            parallelFor(items: s.batch * s.heads, threads: threads) { _, item in
                let b = item / s.heads, h = item % s.heads
                for p in 0..<n {
                    let t = Int(toCaller[p])
                    (out.base + (b * out.batchStride + h * out.headStride + t * out.rowStride) * out.type.size)
                        .copyMemory(from: o.base + (b * o.batchStride + h * o.headStride + p * o.rowStride) * o.type.size, byteCount: bytes)
                }
                if let lse = out.lse, let staged = o.lse {
                    let from = staged.base + b * staged.batchStride + h * staged.headStride
                    let to = lse.base + b * lse.batchStride + h * lse.headStride
                    for p in 0..<n { to[Int(toCaller[p])] = from[p] }
                }
            }
        }
        return result
    }
}
