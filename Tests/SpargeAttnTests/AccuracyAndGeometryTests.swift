import Testing
@testable import SpargeAttn

/// The library's accuracy metrics (also the tests' yardstick) and the block counts of a shape.
struct AccuracyAndGeometryTests {
    @Test func accuracyOverSelectedRows() throws {
        // Two rows of two values; the second row is wrong by 1 in one value.
        let x: [Float] = [1, 2, 3, 5], y: [Double] = [1, 2, 3, 4]
        let all = try Accuracy(x, reference: y)
        #expect(all.maxAbsoluteError == 1 && all.relativeL1 == 0.1)
        #expect(abs(all.relativeL2 - (1.0 / 30).squareRoot()) < 1e-15)
        let first = try Accuracy(x, reference: y, rowLength: 2, includeRow: { $0 == 0 })
        #expect(first.maxAbsoluteError == 0 && first.relativeL2 == 0 && first.cosine > 0.999999)
        #expect(throws: SpargeError.self) { _ = try Accuracy(x, reference: [1.0, 2.0]) }
        #expect(throws: SpargeError.self) { _ = try Accuracy(x, reference: y, rowLength: 0) }
    }

    @Test func blockCountsRoundUp() throws {
        let s = AttentionShape(heads: 2, queryLength: 129, keyLength: 64, headDim: 32)
        #expect(s.blockCounts(blockQ: 128, blockK: 64) == (2, 1))
        let g = SparseGeometry(shape: s, blockQ: 128, blockK: 64)
        #expect(g.mapCount == 2 * 2 * 1)
        // A map of those counts validates; one block more does not.
        try BlockMap(batch: 1, heads: 2, queryBlocks: 2, keyBlocks: 1).validate(for: s, blockQ: 128, blockK: 64)
        #expect(throws: SpargeError.self) {
            try BlockMap(batch: 1, heads: 2, queryBlocks: 2, keyBlocks: 2).validate(for: s, blockQ: 128, blockK: 64)
        }
    }
}
