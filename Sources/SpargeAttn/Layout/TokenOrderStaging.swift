// How an entry point runs in a token order: the caller's Q, K and V (any layout and element
// type, already validated) are gathered into dense HND copies of the same element type, the
// call runs on those, and its output rows and log-sum-exps are scattered back to the caller's
// positions. Keeping the element type makes the call bit-identical to permuting by hand.

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
}

/// Runs `body` on `views` seen in `order` (validated for `shape` by the caller) with the key
/// padding bytes in the same order, then scatters the output and log-sum-exp back; with no
/// order or the identity, `body` runs on the caller's views. `staging` nil: allocated here.
func withTokenOrder<R>(_ order: TokenOrder?, _ views: CallViews, shape s: AttentionShape, keyPadding: KeyPaddingMask?,
                       staging: TokenOrderStaging?, threads: Int,
                       _ body: (CallViews, UnsafePointer<UInt8>?) throws -> R) rethrows -> R {
    guard let order, !order.isIdentity else { return try withKeyValid(keyPadding) { try body(views, $0) } }
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
        let result = try body(ordered, keyValid)
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
