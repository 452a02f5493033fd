import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// Whether `body` throws ``SpargeError/invalidTokenOrder(_:)`` (and not some other error).
private func throwsInvalidTokenOrder(_ body: () throws -> Void) -> Bool {
    do { try body() } catch SpargeError.invalidTokenOrder { return true } catch { return false }
    return false
}

/// Token order (``TokenOrder``) for every entry point and element type: the same as permuting
/// by hand, bit for bit; close to float64 attention in the caller's order; the errors.
struct TokenOrderTests {
    /// A ViT-like sequence: one CLS token, then a 5 x 7 grid (N = 36: ragged blocks of 16 and 8).
    static let vit = try! TokenOrder.hilbert(height: 5, width: 7, prefix: 1)
    /// A video-like one: 2 register tokens, then a 3 x 4 x 5 grid (N = 62).
    static let video = try! TokenOrder.hilbert(frames: 3, height: 4, width: 5, prefix: 2)

    static func parameters(causal: Bool = false) -> SpargeParameters {
        var p = SpargeParameters()
        p.blockQ = 16
        p.blockK = 8
        p.selection = .topK(0.5)
        p.simThreshold = PerHead(-0.2)
        p.pvThreshold = 4
        p.causal = causal
        return p
    }

    // MARK: The value

    @Test func ordersHoldTheirTokens() throws {
        let o = Self.vit
        #expect(o.count == 36 && o.prefix == 1 && !o.isIdentity)
        #expect(o.kind == .hilbert(frames: 1, height: 5, width: 7))
        #expect(o.permutation[0] == 0, "the CLS token stays first")
        #expect(Set(o.permutation) == Set(0..<36))
        for p in 0..<o.count { #expect(Int(o.inverse[Int(o.permutation[p])]) == p) }
        // The grid part is the Hilbert curve of 5 x 7, shifted past the prefix.
        let plain = try TokenOrder.hilbert(height: 5, width: 7)
        #expect(Array(o.permutation.dropFirst()) == plain.permutation.map { $0 + 1 })
        #expect(o.description == "hilbert 5x7 + prefix 1 (N = 36)")

        let explicit = try TokenOrder(permutation: [2, 0, 1], prefix: 2)
        #expect(explicit.count == 5 && explicit.permutation == [0, 1, 4, 2, 3] && explicit.inverse == [0, 1, 3, 4, 2])
        #expect(try TokenOrder.identity(count: 9).permutation == Array(0..<9))
        // Orders that move nothing are the identity (and cost nothing).
        #expect(try TokenOrder.hilbert(height: 1, width: 12, prefix: 3).isIdentity)
        #expect(try TokenOrder(permutation: [0, 1, 2]).isIdentity)
        #expect(Self.video.count == 62 && Self.video.permutation.prefix(2) == [0, 1])
    }

    @Test func badOrdersThrowTypedErrors() throws {
        #expect(throwsInvalidTokenOrder { _ = try TokenOrder(permutation: [0, 2, 2]) })      // repeated, 1 missing
        #expect(throwsInvalidTokenOrder { _ = try TokenOrder(permutation: [0, 3, 1]) })      // out of range
        #expect(throwsInvalidTokenOrder { _ = try TokenOrder(permutation: [-1, 0]) })
        #expect(throwsInvalidTokenOrder { _ = try TokenOrder(permutation: [Int]()) })        // no tokens
        #expect(throwsInvalidTokenOrder { _ = try TokenOrder(permutation: [0], prefix: -1) })
        #expect(throwsInvalidTokenOrder { _ = try TokenOrder.hilbert(height: 0, width: 4) })
        #expect(throwsInvalidTokenOrder { _ = try TokenOrder.hilbert(frames: 2, height: 3, width: -1) })
        #expect(throwsInvalidTokenOrder { _ = try TokenOrder.hilbert(height: 3, width: 3, prefix: -2) })
        #expect(throwsInvalidTokenOrder { _ = try TokenOrder.hilbert(frames: 1 << 20, height: 1 << 20, width: 1 << 20) })
        #expect(throwsInvalidTokenOrder { _ = try TokenOrder.identity(count: 0) })
        do {
            _ = try TokenOrder(permutation: [0, 2, 2])
        } catch {
            #expect("\(error)".contains("repeats token 2") && "\(error)".contains("1 is missing"), "\(error)")
        }

        // The count must be the sequence length, for queries and keys alike.
        let shape = AttentionShape(heads: 1, queryLength: 35, headDim: 8)
        let x = [Float](repeating: 0.1, count: 36 * 8)
        #expect(throwsInvalidTokenOrder { _ = try SpargePlan(shape: shape, tokenOrder: Self.vit) })
        #expect(throwsInvalidTokenOrder {
            _ = try SpargeAttention.sparse(q: Array(x.prefix(35 * 8)), k: Array(x.prefix(35 * 8)), v: Array(x.prefix(35 * 8)),
                                           shape: shape, parameters: Self.parameters(), tokenOrder: Self.vit)
        })
        let cross = AttentionShape(heads: 1, queryLength: 36, keyLength: 20, headDim: 8)
        #expect(throwsInvalidTokenOrder { _ = try SpargePlan(shape: cross, parameters: Self.parameters(), tokenOrder: Self.vit) })
        do {
            _ = try SpargePlan(shape: shape, tokenOrder: Self.vit)
        } catch {
            #expect("\(error)".contains("prefix + frames x height x width = N"), "\(error)")
        }

        // Causal attention is defined on the caller's order: a reordering is refused, the identity is not.
        let full = AttentionShape(heads: 1, queryLength: 36, headDim: 8)
        #expect(throwsInvalidTokenOrder { _ = try SpargePlan(shape: full, parameters: Self.parameters(causal: true), tokenOrder: Self.vit) })
        #expect(throwsInvalidTokenOrder {
            _ = try SpargeAttention.sparse(q: x, k: x, v: x, shape: full, parameters: Self.parameters(causal: true), tokenOrder: Self.vit)
        })
        #expect(throwsInvalidTokenOrder { _ = try SpargeAttention.dense(q: x, k: x, v: x, shape: full, tokenOrder: Self.vit, causal: true) })
        _ = try SpargePlan(shape: full, parameters: Self.parameters(causal: true), tokenOrder: .identity(count: 36))
        _ = try SpargeAttention.sparse(q: x, k: x, v: x, shape: full, parameters: Self.parameters(causal: true),
                                       tokenOrder: .hilbert(height: 1, width: 35, prefix: 1))
    }

    // MARK: Permuting buffers

    @Test func permuteAndUnpermuteBuffers() throws {
        var rng = TestRNG(seed: 3)
        let o = Self.video, rowWidth = 6, groups = 3
        let x = rng.gaussians(groups * o.count * rowWidth).map { Float16($0) }
        let y = try o.permuted(x, rowWidth: rowWidth)
        for g in 0..<groups {
            for p in 0..<o.count {
                let from = (g * o.count + Int(o.permutation[p])) * rowWidth, to = (g * o.count + p) * rowWidth
                #expect(y[to..<to + rowWidth] == x[from..<from + rowWidth])
            }
        }
        #expect(try o.unpermuted(y, rowWidth: rowWidth) == x)
        // The buffer forms equal the array forms.
        var z = [Float16](repeating: 0, count: x.count), back = z
        try x.withUnsafeBufferPointer { src in try z.withUnsafeMutableBufferPointer { try o.permute(src, into: $0, rowWidth: rowWidth) } }
        #expect(z == y)
        try z.withUnsafeBufferPointer { src in try back.withUnsafeMutableBufferPointer { try o.unpermute(src, into: $0, rowWidth: rowWidth) } }
        #expect(back == x)
        // A token's heads move together with NHD rows (rowWidth H * D).
        let nhd = rng.gaussians(o.count * 2 * 3)
        let moved = try o.permuted(nhd, rowWidth: 6)
        #expect(moved[6..<12] == nhd[6 * Int(o.permutation[1])..<6 * Int(o.permutation[1]) + 6])

        // Errors: not whole groups, a short destination, overlapping buffers, a bad row width.
        #expect(throws: SpargeError.self) { _ = try o.permuted(Array(x.dropLast()), rowWidth: rowWidth) }
        #expect(throws: SpargeError.self) { _ = try o.permuted(x, rowWidth: 0) }
        var short = [Float16](repeating: 0, count: x.count - 1)
        #expect(throws: SpargeError.bufferTooSmall(name: "destination", expected: x.count, actual: x.count - 1)) {
            try x.withUnsafeBufferPointer { src in try short.withUnsafeMutableBufferPointer { try o.permute(src, into: $0, rowWidth: rowWidth) } }
        }
        var same = x
        #expect(throws: SpargeError.self) {
            try same.withUnsafeMutableBufferPointer { buffer in
                try o.permute(UnsafeBufferPointer(buffer), into: buffer, rowWidth: rowWidth)
            }
        }
    }

    // MARK: Entry points equal permuting by hand

    /// Sparse attention with a token order against permuting by hand + the plain call +
    /// unpermuting: bit for bit, for every element type and layout, with GQA, LSE and padding.
    @Test(arguments: ElementType.allCases, [false, true])
    func sparseEqualsPermutingByHand(type: ElementType, video: Bool) throws {
        let order = video ? Self.video : Self.vit
        var rng = TestRNG(seed: UInt64(type.size * 10 + (video ? 1 : 0)))
        let s = AttentionShape(batch: 2, heads: 4, kvHeads: 2, queryLength: order.count, headDim: 12)
        let q = LayoutTypeMatrixTests.round(rng.gaussians(s.queryElements, scale: 1.5), type)
        let k = LayoutTypeMatrixTests.round(rng.gaussians(s.keyElements, scale: 1.5), type)
        let v = LayoutTypeMatrixTests.round(rng.gaussians(s.keyElements), type)
        let valid = (0..<s.batch * s.keyLength).map { $0 % 11 != 4 }
        let padding = try KeyPaddingMask(batch: s.batch, keyLength: s.keyLength, valid: valid)
        let p = Self.parameters()
        let d = s.headDim

        // By hand: HND arrays in token order, the plain call, the output and LSE put back.
        let permutedValid = (0..<s.batch).flatMap { b in order.permutation.map { valid[b * s.keyLength + Int($0)] } }
        let permutedPadding = try KeyPaddingMask(batch: s.batch, keyLength: s.keyLength, valid: permutedValid)
        var handLSE = [Float](repeating: 0, count: s.batch * s.heads * s.queryLength)
        let (handOut, handResult) = try LayoutTypeMatrixTests.withTensors(
            order.permuted(q, rowWidth: d), order.permuted(k, rowWidth: d), order.permuted(v, rowWidth: d),
            shape: s, layout: .hnd, type: type
        ) { qi, ki, vi, o, read in
            let r = try handLSE.withUnsafeMutableBufferPointer {
                try SpargeAttention.sparse(q: qi, k: ki, v: vi, output: o, shape: s, parameters: p, lse: $0, keyPadding: permutedPadding)
            }
            return (try order.unpermuted(read(), rowWidth: d), r)
        }
        let expectedLSE = try order.unpermuted(handLSE, rowWidth: 1)

        for layout in LayoutTypeMatrixTests.Layout.allCases {
            var lse = [Float](repeating: .nan, count: handLSE.count)
            let (out, result) = try LayoutTypeMatrixTests.withTensors(q, k, v, shape: s, layout: layout, type: type) { qi, ki, vi, o, read in
                let r = try lse.withUnsafeMutableBufferPointer {
                    try SpargeAttention.sparse(q: qi, k: ki, v: vi, output: o, shape: s, parameters: p, tokenOrder: order,
                                               lse: $0, keyPadding: padding)
                }
                return (read(), r)
            }
            let label = "\(type) \(layout) \(order)"
            #expect(out.map(\.bitPattern) == handOut.map(\.bitPattern), "output \(label)")
            #expect(lse.map(\.bitPattern) == expectedLSE.map(\.bitPattern), "lse \(label)")
            #expect(result.blockMap == handResult.blockMap, "the block map is in token order, \(label)")
            #expect(result.statistics == handResult.statistics, "statistics \(label)")
            #expect(try #require(result.blockMap).density < 1, "a sparse map, \(label)")
        }
    }

    /// A plan with a token order: every call equals the hand-permuted plan call, bit for bit,
    /// and the workspace's map is in token order; the workspace is reused across calls.
    @Test(arguments: ElementType.allCases)
    func planEqualsPermutingByHand(type: ElementType) throws {
        let order = Self.vit
        let s = AttentionShape(heads: 2, queryLength: order.count, headDim: 16)
        let p = Self.parameters()
        let plan = try SpargePlan(shape: s, parameters: p, tokenOrder: order, threads: 2)
        let plain = try SpargePlan(shape: s, parameters: p, threads: 2)
        #expect(plan.tokenOrder == order)
        let workspace = plan.makeWorkspace(), plainWorkspace = plain.makeWorkspace()
        var rng = TestRNG(seed: 77)
        for call in 0..<2 {
            let q = LayoutTypeMatrixTests.round(rng.gaussians(s.queryElements, scale: 2), type)
            let k = LayoutTypeMatrixTests.round(rng.gaussians(s.keyElements, scale: 2), type)
            let v = LayoutTypeMatrixTests.round(rng.gaussians(s.keyElements), type)
            var lse = [Float](repeating: 0, count: s.heads * s.queryLength), handLSE = lse
            let (out, summary) = try LayoutTypeMatrixTests.withTensors(q, k, v, shape: s, layout: .nhd, type: type) { qi, ki, vi, o, read in
                let r = try lse.withUnsafeMutableBufferPointer { try plan.run(q: qi, k: ki, v: vi, output: o, workspace: workspace, lse: $0) }
                return (read(), r)
            }
            let (hand, handSummary) = try LayoutTypeMatrixTests.withTensors(
                order.permuted(q, rowWidth: 16), order.permuted(k, rowWidth: 16), order.permuted(v, rowWidth: 16),
                shape: s, layout: .hnd, type: type
            ) { qi, ki, vi, o, read in
                let r = try handLSE.withUnsafeMutableBufferPointer {
                    try plain.run(q: qi, k: ki, v: vi, output: o, workspace: plainWorkspace, lse: $0)
                }
                return (try order.unpermuted(read(), rowWidth: 16), r)
            }
            #expect(out.map(\.bitPattern) == hand.map(\.bitPattern), "\(type) call \(call)")
            #expect(lse.map(\.bitPattern) == (try order.unpermuted(handLSE, rowWidth: 1)).map(\.bitPattern))
            #expect(summary.statistics.density == handSummary.statistics.density && summary.statistics.skippedTiles == handSummary.statistics.skippedTiles)
            #expect(try workspace.blockMap == plainWorkspace.blockMap)
        }
    }

    /// An attention mask with a token order stays in the caller's order: sparse (one-shot and
    /// plan, whose workspace keeps the permuted mask across calls), dense and their LSEs equal,
    /// bit for bit, permuting Q, K, V and the mask's rows and keys by hand, calling without an
    /// order and unpermuting. A mask per batch entry and one shared by both.
    @Test func attentionMaskFollowsTheTokenOrder() throws {
        let order = Self.video, n = Self.video.count
        let s = AttentionShape(batch: 2, heads: 2, queryLength: n, headDim: 16)
        var rng = TestRNG(seed: 4909)
        let q = rng.gaussians(s.queryElements, scale: 2), k = rng.gaussians(s.keyElements, scale: 2), v = rng.gaussians(s.keyElements)
        let p = Self.parameters()
        let toCaller = order.permutation.map { Int($0) }
        // Two documents of different lengths per entry, and a few pairs cut inside them.
        let perEntry = try AttentionMask(batch: 2, queryLength: n, keyLength: n) { b, i, j in
            let split = b == 0 ? 25 : 40
            return (i < split) == (j < split) && (i * 7 + j * 3) % 13 != 0
        }
        let shared = try AttentionMask(queryLength: n, keyLength: n) { _, i, j in abs(i - j) < 20 || j == 0 }
        func permuted(_ mask: AttentionMask) throws -> AttentionMask {
            try AttentionMask(batch: mask.batch, queryLength: n, keyLength: n) { b, i, j in mask[b, toCaller[i], toCaller[j]] }
        }
        let plan = try SpargePlan(shape: s, parameters: p, tokenOrder: order, threads: 2), workspace = plan.makeWorkspace()
        let plain = try SpargePlan(shape: s, parameters: p, threads: 2), plainWorkspace = plain.makeWorkspace()
        let (unmasked, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: s, parameters: p, tokenOrder: order)
        for mask in [perEntry, shared, perEntry] {
            let byHand = try permuted(mask)
            let (handOut, handResult) = try SpargeAttention.sparse(
                q: order.permuted(q, rowWidth: 16), k: order.permuted(k, rowWidth: 16), v: order.permuted(v, rowWidth: 16),
                shape: s, parameters: p, captureLSE: true, attentionMask: byHand)
            let (out, result) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: s, parameters: p, tokenOrder: order, captureLSE: true,
                                                           attentionMask: mask)
            #expect(out.map(\.bitPattern) == (try order.unpermuted(handOut, rowWidth: 16)).map(\.bitPattern), "sparse, batch \(mask.batch)")
            #expect(try #require(result.lse).map(\.bitPattern) == (try order.unpermuted(try #require(handResult.lse), rowWidth: 1)).map(\.bitPattern))
            #expect(result.blockMap == handResult.blockMap && result.statistics == handResult.statistics)
            #expect(out != unmasked, "the mask changes the output")
            // The plan: the same through its workspace (a second masked call reuses the permuted bytes' memory).
            var planOut = [Float](repeating: .nan, count: s.queryElements), planHand = planOut
            _ = try plan.run(q: q, k: k, v: v, output: &planOut, workspace: workspace, attentionMask: mask)
            _ = try plain.run(q: order.permuted(q, rowWidth: 16), k: order.permuted(k, rowWidth: 16), v: order.permuted(v, rowWidth: 16),
                              output: &planHand, workspace: plainWorkspace, attentionMask: byHand)
            #expect(planOut.map(\.bitPattern) == (try order.unpermuted(planHand, rowWidth: 16)).map(\.bitPattern), "plan, batch \(mask.batch)")
            // Dense.
            let dense = try SpargeAttention.dense(q: q, k: k, v: v, shape: s, tokenOrder: order, attentionMask: mask)
            let denseHand = try SpargeAttention.dense(q: order.permuted(q, rowWidth: 16), k: order.permuted(k, rowWidth: 16),
                                                      v: order.permuted(v, rowWidth: 16), shape: s, tokenOrder: nil, attentionMask: byHand)
            #expect(dense.map(\.bitPattern) == (try order.unpermuted(denseHand, rowWidth: 16)).map(\.bitPattern), "dense, batch \(mask.batch)")
        }
    }

    /// The identity order (given as such, or a grid whose curve moves nothing) is the plain call.
    @Test func identityOrderIsThePlainCall() throws {
        var rng = TestRNG(seed: 5)
        let s = AttentionShape(batch: 2, heads: 2, queryLength: 36, headDim: 16)
        let q = rng.gaussians(s.queryElements), k = rng.gaussians(s.keyElements), v = rng.gaussians(s.keyElements)
        let p = Self.parameters()
        let (plain, plainResult) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: s, parameters: p, captureLSE: true)
        for order in [try TokenOrder.identity(count: 36), try TokenOrder.hilbert(height: 1, width: 35, prefix: 1)] {
            let (out, result) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: s, parameters: p, tokenOrder: order, captureLSE: true)
            #expect(out.map(\.bitPattern) == plain.map(\.bitPattern))
            #expect(result == plainResult)
        }
        let dense = try SpargeAttention.dense(q: q, k: k, v: v, shape: s)
        let identityDense = try SpargeAttention.dense(q: q, k: k, v: v, shape: s, tokenOrder: .identity(count: 36))
        #expect(identityDense.map(\.bitPattern) == dense.map(\.bitPattern))
    }

    // MARK: Accuracy in the caller's order

    /// Against float64 exact attention in the caller's order: every block marked (only INT8
    /// rounding remains), and a predicted map (exact attention restricted to that token-order map).
    @Test(arguments: [false, true])
    func outputMatchesFloat64InCallersOrder(video: Bool) throws {
        let order = video ? Self.video : Self.vit
        var rng = TestRNG(seed: video ? 21 : 20)
        let s = AttentionShape(batch: 1, heads: 3, queryLength: order.count, headDim: 32)
        let q = rng.gaussians(s.queryElements, scale: 2), k = rng.gaussians(s.keyElements, scale: 2), v = rng.gaussians(s.keyElements)
        var p = Self.parameters()
        p.pvThreshold = PerHead(Float.infinity)
        let (nq, nk) = s.blockCounts(blockQ: p.blockQ, blockK: p.blockK)
        let full = try BlockMap.full(batch: 1, heads: 3, queryBlocks: nq, keyBlocks: nk)
        let (out, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: s, parameters: p, tokenOrder: order, blockMap: full)
        let exact = try Float64Reference.attention(q: q, k: k, v: v, shape: s)
        let accuracy = try Accuracy(out, reference: exact)
        #expect(accuracy.cosine >= 0.999 && accuracy.relativeL1 <= 0.03, "\(accuracy)")

        let (sparse, result) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: s, parameters: p, tokenOrder: order)
        #expect(try #require(result.blockMap).density < 1)
        let d = s.headDim
        let masked = try Float64Reference.attention(q: try order.permuted(q, rowWidth: d), k: try order.permuted(k, rowWidth: d),
                                                v: try order.permuted(v, rowWidth: d), shape: s,
                                                blockMap: result.blockMap, blockQ: p.blockQ, blockK: p.blockK)
        let maskedInCallersOrder = try order.unpermuted(masked, rowWidth: d)
        let sparseAccuracy = try Accuracy(sparse, reference: maskedInCallersOrder)
        #expect(sparseAccuracy.cosine >= 0.999, "\(sparseAccuracy)")

        // Dense attention in token order is exact attention (only the rounding moves).
        let dense = try SpargeAttention.dense(q: q, k: k, v: v, shape: s, tokenOrder: order)
        #expect(try Accuracy(dense, reference: exact).relativeL2 <= 1e-5)
    }

    /// Stage 1 alone in token order predicts the map the sparse call uses.
    @Test func predictedMapIsTheSparseCallsMap() throws {
        var rng = TestRNG(seed: 8)
        let s = AttentionShape(heads: 2, queryLength: Self.video.count, headDim: 16)
        let q = rng.gaussians(s.queryElements), k = rng.gaussians(s.keyElements), v = rng.gaussians(s.keyElements)
        let p = Self.parameters()
        let predicted = try SpargeAttention.predictBlockMap(q: q, k: k, shape: s, parameters: p, tokenOrder: Self.video)
        let (_, result) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: s, parameters: p, tokenOrder: Self.video)
        #expect(predicted.blockMap == result.blockMap)
        let byHand = try SpargeAttention.predictBlockMap(q: Self.video.permuted(q, rowWidth: 16), k: Self.video.permuted(k, rowWidth: 16),
                                                         shape: s, parameters: p)
        #expect(predicted.blockMap == byHand.blockMap)
    }

    /// A varlen batch with one order per sequence (nil for one): each sequence equals its own
    /// one-shot call with that order, bit for bit, outputs and log-sum-exps.
    @Test func variableLengthBatchTakesOneOrderPerSequence() throws {
        let heads = 2, d = 16
        let orders: [TokenOrder?] = [Self.vit, nil, Self.video]
        let lengths = [36, 20, 62]
        let cu = [0, 36, 56, 118]
        let batch = try VariableLengthBatch(cumulativeQueryLengths: cu)
        var rng = TestRNG(seed: 41)
        let q = rng.gaussians(batch.totalQueries * heads * d), k = rng.gaussians(batch.totalKeys * heads * d)
        let v = rng.gaussians(batch.totalKeys * heads * d)
        let p = Self.parameters()
        var out = [Float](repeating: 0, count: q.count), lse = [Float](repeating: 0, count: heads * batch.totalQueries)
        func run(_ orders: [TokenOrder?]) throws -> [SparseAttentionResult] {
            try q.withUnsafeBufferPointer { qp in try k.withUnsafeBufferPointer { kp in try v.withUnsafeBufferPointer { vp in
                try out.withUnsafeMutableBufferPointer { o in try lse.withUnsafeMutableBufferPointer { l in
                    try SpargeAttention.sparse(q: AttentionInput(qp), k: AttentionInput(kp), v: AttentionInput(vp), output: AttentionOutput(o),
                                               batch: batch, heads: heads, headDim: d, parameters: p, tokenOrders: orders, lse: l)
                } } } } }
        }
        let results = try run(orders)
        for i in 0..<3 {
            let shape = AttentionShape(heads: heads, queryLength: lengths[i], headDim: d)
            let hnd = { (x: [Float]) in VariableLengthBatchTests.hnd(x, first: cu[i], count: lengths[i], heads: heads, d: d) }
            let (alone, r) = try SpargeAttention.sparse(q: hnd(q), k: hnd(k), v: hnd(v), shape: shape, parameters: p,
                                                        tokenOrder: orders[i], captureLSE: true)
            #expect(hnd(out).map(\.bitPattern) == alone.map(\.bitPattern), "sequence \(i) output")
            let aloneLSE = try #require(r.lse)
            for h in 0..<heads {
                let row = lse[(h * batch.totalQueries + cu[i])..<(h * batch.totalQueries + cu[i] + lengths[i])]
                #expect(row.map(\.bitPattern) == aloneLSE[(h * lengths[i])..<((h + 1) * lengths[i])].map(\.bitPattern), "sequence \(i) lse")
            }
            #expect(results[i].blockMap == r.blockMap)
        }
        // One order per sequence, each of its sequence's length.
        #expect(throwsInvalidTokenOrder { _ = try run([Self.vit, nil]) })
        #expect(throwsInvalidTokenOrder { _ = try run([Self.video, nil, Self.vit]) })
    }
}
