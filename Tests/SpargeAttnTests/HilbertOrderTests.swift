import Testing
@testable import SpargeAttn
@testable import SpargeWorkloads
import SpargeTestSupport

/// Grids as (frames, height, width); frames 1 is an image.
private let grids: [(Int, Int, Int)] = [
    (1, 1, 1), (1, 1, 13), (1, 13, 1), (1, 2, 3), (1, 3, 2), (1, 5, 7), (1, 16, 16), (1, 17, 31),
    (1, 16, 64), (1, 31, 17), (3, 10, 13), (4, 16, 32), (1, 1, 9), (9, 1, 1), (2, 1, 5), (8, 16, 32),
    (5, 5, 5), (7, 3, 11), (2, 2, 2), (6, 1, 6),
]

/// The Hilbert order of a grid, with its sizes.
private struct Grid {
    let order: TokenOrder
    let frames: Int, height: Int, width: Int
    var count: Int { order.count }
    var permutation: [Int32] { order.permutation }
    var inverse: [Int32] { order.inverse }
    /// The grid coordinates `(t, y, x)` of raster token `r`.
    func coordinates(ofRasterToken r: Int) -> (t: Int, y: Int, x: Int) {
        (r / (height * width), r / width % height, r % width)
    }
}

private func order(_ g: (Int, Int, Int)) throws -> Grid {
    Grid(order: try TokenOrder.hilbert(frames: g.0, height: g.1, width: g.2), frames: g.0, height: g.1, width: g.2)
}

/// Mean Manhattan grid distance between consecutive Hilbert positions.
private func meanStep(_ o: Grid) -> Double {
    guard o.count > 1 else { return 1 }
    var total = 0
    for p in 1..<o.count {
        let a = o.coordinates(ofRasterToken: Int(o.permutation[p - 1]))
        let b = o.coordinates(ofRasterToken: Int(o.permutation[p]))
        total += abs(a.t - b.t) + abs(a.y - b.y) + abs(a.x - b.x)
    }
    return Double(total) / Double(o.count - 1)
}

/// Mean half-perimeter (sum of the extents) of the bounding boxes of consecutive `block`-token
/// blocks, for a token order `tokens` (raster indices).
private func meanBoxSize(_ o: Grid, _ tokens: [Int32], block: Int) -> Double {
    var total = 0, blocks = 0
    for start in stride(from: 0, to: tokens.count, by: block) {
        let cs = tokens[start..<min(start + block, tokens.count)].map { o.coordinates(ofRasterToken: Int($0)) }
        let ts = cs.map(\.t), ys = cs.map(\.y), xs = cs.map(\.x)
        total += ts.max()! - ts.min()! + ys.max()! - ys.min()! + xs.max()! - xs.min()! + 3
        blocks += 1
    }
    return Double(total) / Double(blocks)
}

@Test func hilbertIsABijection() throws {
    for g in grids {
        let o = try order(g)
        #expect(o.count == g.0 * g.1 * g.2)
        #expect(o.permutation.count == o.count && o.inverse.count == o.count)
        #expect(Set(o.permutation).count == o.count, "repeated tokens for \(g)")
        #expect(o.permutation.allSatisfy { $0 >= 0 && Int($0) < o.count }, "out of range for \(g)")
        for p in 0..<o.count { #expect(Int(o.inverse[Int(o.permutation[p])]) == p) }
    }
    // The 2-D form is the one-frame grid.
    #expect(try TokenOrder.hilbert(height: 5, width: 7) == TokenOrder.hilbert(frames: 1, height: 5, width: 7))
}

@Test func hilbertRejectsBadSizes() throws {
    for (t, h, w) in [(0, 4, 4), (1, 0, 4), (1, 4, -1), (-2, 3, 3)] {
        #expect(throws: SpargeError.self) { try TokenOrder.hilbert(frames: t, height: h, width: w) }
    }
    #expect(throws: SpargeError.self) { try TokenOrder.hilbert(height: 3, width: 0) }
    #expect(throws: SpargeError.self) { try TokenOrder.hilbert(frames: 1 << 20, height: 1 << 20, width: 1 << 20) }
    let o = try TokenOrder.hilbert(frames: 2, height: 3, width: 4)
    #expect(throws: SpargeError.self) { try o.validate(for: AttentionShape(heads: 1, queryLength: 23, headDim: 4)) }
    try o.validate(for: AttentionShape(heads: 1, queryLength: 24, headDim: 4))
    // A workload whose tokens end mid-frame has no rectangular grid.
    var partial = VideoLikeWorkload.medium
    partial.tokens -= 1
    #expect(throws: SpargeError.self) { try TokenOrder.hilbert(partial) }
    #expect(try TokenOrder.hilbert(VideoLikeWorkload.medium).count == VideoLikeWorkload.medium.tokens)
}

@Test func hilbertPermuteRoundTrips() throws {
    var rng = TestRNG(seed: 7)
    for g in [(1, 5, 7), (3, 10, 13), (1, 1, 1), (4, 16, 32)] {
        let o = try order(g)
        let bh = 3, d = 5
        let x = rng.gaussians(bh * o.count * d)
        let y = try o.order.permuted(x, rowWidth: d)
        // Row p of each head is raster row permutation[p].
        for h in 0..<bh {
            for p in stride(from: 0, to: o.count, by: max(1, o.count / 17)) {
                let src = (h * o.count + Int(o.permutation[p])) * d, dst = (h * o.count + p) * d
                #expect(Array(y[dst..<dst + d]) == Array(x[src..<src + d]))
            }
        }
        #expect(try o.order.unpermuted(y, rowWidth: d) == x)
    }
}

/// The deprecated HilbertOrder is the same curve as TokenOrder.hilbert, and its entry point the same call.
@available(*, deprecated)
@Test func deprecatedHilbertOrderIsTheSameOrder() throws {
    var rng = TestRNG(seed: 51)
    let old = try HilbertOrder(frames: 2, height: 6, width: 10)
    let order = try TokenOrder.hilbert(frames: 2, height: 6, width: 10)
    #expect(old.permutation == order.permutation && old.inverse == order.inverse && old.tokenOrder == order)
    let shape = AttentionShape(heads: 2, queryLength: order.count, headDim: 16)
    let q = rng.gaussians(shape.queryElements), k = rng.gaussians(shape.keyElements), v = rng.gaussians(shape.keyElements)
    #expect(old.permuted(q, batchHeads: 2, d: 16) == (try order.permuted(q, rowWidth: 16)))
    var p = SpargeParameters.recommended
    p.blockQ = 16
    p.blockK = 16
    let (out, _) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, tokenOrder: old)
    let (permutedOut, _) = try SpargeAttention.sparse(
        q: old.permuted(q, batchHeads: 2, d: 16), k: old.permuted(k, batchHeads: 2, d: 16),
        v: old.permuted(v, batchHeads: 2, d: 16), shape: shape, parameters: p)
    #expect(out == old.unpermuted(permutedOut, batchHeads: 2, d: 16))
    let wrong = AttentionShape(heads: 2, queryLength: 100, headDim: 16)
    #expect(throws: SpargeError.self) {
        _ = try SpargeAttention.sparse(q: q, k: k, v: v, shape: wrong, parameters: p, tokenOrder: old)
    }
}

@Test func hilbertStepsAreLocal() throws {
    // Power-of-two squares and cubes (the classical Hilbert curve), 2-D rectangles and even
    // cuboids: every step a unit step.
    for g in [(1, 2, 2), (1, 16, 16), (1, 64, 64), (1, 16, 64), (4, 4, 4), (8, 16, 32), (4, 16, 32),
              (1, 5, 7), (1, 17, 31), (6, 10, 14)] {
        #expect(meanStep(try order(g)) == 1, "grid \(g)")
    }
    for g in grids {
        let s = meanStep(try order(g))
        #expect(s <= 1.5, "grid \(g): mean step \(s)")
    }
}

@Test func hilbertBlocksAreCompact() throws {
    for g in [(1, 16, 64), (4, 16, 32)] {
        let o = try order(g)
        let raster = (0..<Int32(o.count)).map { $0 }
        let hilbert = meanBoxSize(o, o.permutation, block: 64), rows = meanBoxSize(o, raster, block: 64)
        // Raster blocks of 64 tokens are 1x64 or 2x32 strips (sum of extents 65 or 35);
        // Hilbert blocks are 8x8 or 4x4x4 patches (16 or 12).
        #expect(hilbert < 0.6 * rows, "grid \(g): Hilbert \(hilbert) vs raster \(rows)")
    }
}
