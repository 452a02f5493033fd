import Testing
@testable import SpargeAttn
import SpargeFormats
import SpargeTestSupport

/// Sizes whose products overflow or that no memory could hold, worker counts that would
/// allocate without bound, and cache arguments that used to be accepted: each throws a typed
/// error before anything is multiplied or allocated.
struct HostileSizesTests {
    static let none = [Float]()

    @Test func shapesThatOverflowThrowBeforeTheOutputIsSized() {
        for s in [AttentionShape(batch: -1, heads: 1, queryLength: 1, headDim: 1),
                  AttentionShape(heads: 1 << 32, queryLength: 1 << 32, headDim: 1)] {
            #expect(throws: SpargeError.self, "\(s)") {
                let _: [Float] = try SpargeAttention.dense(q: Self.none, k: Self.none, v: Self.none, shape: s)
            }
            #expect(throws: SpargeError.self, "\(s)") {
                let _: [Float] = try SpargeAttention.dense(q: Self.none, k: Self.none, v: Self.none, shape: s, tokenOrder: nil)
            }
            #expect(throws: SpargeError.self, "\(s)") {
                _ = try SpargeAttention.sparse(q: Self.none, k: Self.none, v: Self.none, shape: s, tokenOrder: nil, captureLSE: true)
            }
            var out = [Float]()
            #expect(throws: SpargeError.self, "\(s)") {
                try SpargeAttention.sparse(q: Self.none, k: Self.none, v: Self.none, output: &out, shape: s, captureLSE: true)
            }
        }
    }

    @Test func variableLengthBatchesThatOverflowThrow() throws {
        let eight = [Float](repeating: 0, count: 8)
        var out = eight
        let two = try VariableLengthBatch(cumulativeQueryLengths: [0, 2])
        #expect(throws: SpargeError.self) {
            try SpargeAttention.sparse(q: eight, k: eight, v: eight, output: &out, batch: two, heads: 1 << 40, headDim: 1 << 30)
        }
        let huge = try VariableLengthBatch(cumulativeQueryLengths: [0, 1, 1 << 62])
        #expect(throws: SpargeError.self) {
            try SpargeAttention.sparse(q: eight, k: eight, v: eight, output: &out, batch: huge, heads: 1, headDim: 4)
        }
    }

    @Test func blockMapsAndMasksOfImpossibleSizesThrow() {
        #expect(throws: SpargeError.self) { _ = try BlockMap(batch: -1, heads: 1, queryBlocks: 1, keyBlocks: 1) }
        #expect(throws: SpargeError.self) { _ = try BlockMap.full(batch: 1 << 32, heads: 1 << 32, queryBlocks: 1, keyBlocks: 1) }
        #expect(throws: SpargeError.self) { _ = try BlockMap(batch: 1 << 32, heads: 1 << 32, queryBlocks: 1, keyBlocks: 1, bits: []) }
        #expect(throws: SpargeError.self) { _ = try KeyPaddingMask(batch: 1 << 32, keyLength: 1 << 32, valid: []) }
        #expect(throws: SpargeError.self) { _ = try KeyPaddingMask(validLengths: [1], keyLength: 1 << 40) }
        #expect(throws: SpargeError.self) { _ = try TokenOrder(permutation: [0], prefix: Int.max) }
    }

    @Test func threadCountsOutsideTheRangeThrow() throws {
        let s = AttentionShape(heads: 1, queryLength: 8, headDim: 4)
        let x = (0..<32).map { Float($0 % 5) * 0.1 }
        for t in [0, -5, 100_000, Int.max] {
            #expect(throws: SpargeError.self, "\(t)") { _ = try SpargeAttention.sparse(q: x, k: x, v: x, shape: s, threads: t) }
            #expect(throws: SpargeError.self, "\(t)") { let _: [Float] = try SpargeAttention.dense(q: x, k: x, v: x, shape: s, threads: t) }
            #expect(throws: SpargeError.self, "\(t)") { _ = try SpargePlan(shape: s, threads: t) }
            #expect(throws: SpargeError.self, "\(t)") { _ = try SpargeKVCache(heads: 1, headDim: 4, capacity: 16, threads: t) }
        }
        // Within the range, more workers than CPUs are fine.
        _ = try SpargeAttention.sparse(q: x, k: x, v: x, shape: s, threads: 64)
    }

    @Test func cacheArgumentsAreChecked() throws {
        #expect(throws: SpargeError.self) { _ = try SpargeKVCache(heads: 1, headDim: 4, capacity: 0) }
        #expect(throws: SpargeError.self) { _ = try SpargeKVCache(heads: 1, headDim: 4, capacity: -5) }
        #expect(throws: SpargeError.self) { _ = try SpargeKVCache(heads: 1, headDim: 4, capacity: 4, maxQueryLength: 0) }
        #expect(throws: SpargeError.nonFiniteInput(name: "keyMean", index: 0, value: .infinity)) {
            _ = try SpargeKVCache(heads: 1, headDim: 4, capacity: 4, keyMean: [.infinity, 0, 0, 0])
        }
        let c = try SpargeKVCache(heads: 1, headDim: 4, capacity: 16)
        let row: [Float] = [0.5, -0.25, 0.125, 1]
        try c.append(k: row, v: row, tokens: 1)
        #expect(throws: SpargeError.self) { try c.append(k: row, v: row, tokens: Int.max) }
        var o = [Float](repeating: 0, count: 4)
        for scale in [Float.nan, .infinity, 0, -1] {
            #expect(throws: SpargeError.self, "\(scale)") { try c.attendExact(q: row, output: &o, queries: 1, softmaxScale: scale) }
        }
        #expect(throws: SpargeError.self) { try c.attendExact(q: [Float.nan, 0.1, 0.2, 0.3], output: &o, queries: 1) }
        // Under the propagate policy a NaN query gives a NaN row (it gave zeros).
        var propagate = SpargeParameters.recommended; propagate.nonFinitePolicy = .propagate
        let p = try SpargeKVCache(heads: 1, headDim: 4, capacity: 16, parameters: propagate)
        try p.append(k: row, v: row, tokens: 1)
        try p.attendExact(q: [Float.nan, 0.1, 0.2, 0.3], output: &o, queries: 1)
        #expect(o.allSatisfy { $0.isNaN }, "\(o)")
        // The cache still works after the refusals.
        try c.attendExact(q: row, output: &o, queries: 1)
        #expect(o == row)
    }

    @Test func rectanglesReachingPastIntMaxAreClipped() throws {
        var image = try RGBImage(width: 4, height: 2)
        image.fillRect(x: 1, y: 0, width: Int.max, height: 1, color: RGBColor(0, 0, 0))
        image.fillRect(x: Int.min, y: 1, width: Int.max, height: Int.max, color: RGBColor(0, 0, 0))
        #expect(image.pixels.count == 4 * 2 * 3)
        #expect(Array(image.pixels[0..<3]) == [255, 255, 255])
        #expect(Array(image.pixels[3..<12]) == [UInt8](repeating: 0, count: 9))
    }
}
