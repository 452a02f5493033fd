import Foundation
import SpargeSIMD
import SpargeTestSupport
import Testing
@testable import SpargeAttn

/// Every CPU kernel level this machine runs: each tile kernel against its scalar twin, the
/// attention paths against float64, block maps and INT8 tensors identical across levels, and
/// results bitwise independent of the thread count within a level.
struct KernelLevelTests {
    static let levels = SpargeCPU.supportedLevels

    /// Relative L2 distance of `x` from `ref` (the library's metric).
    static func relativeL2(_ x: [Float], _ ref: [Double]) throws -> Double { try Accuracy(x, reference: ref).relativeL2 }

    @Test func levelsAreOrderedAndIncludeBaseline() throws {
        #expect(Self.levels.first == .baseline)
        #expect(Self.levels == Self.levels.sorted())
        #expect(SpargeCPU.bestLevel == Self.levels.last)
        #expect(try SpargeCPU.currentLevel() == SpargeCPU.bestLevel || ProcessInfo.processInfo.environment["SPARGE_ISA"] != nil)
    }

    @Test func unsupportedLevelIsAnErrorNotACrash() throws {
        for level in CPUKernelLevel.allCases where !Self.levels.contains(level) {
            #expect(throws: SpargeError.self) { try SpargeCPU.withLevel(level) {} }
        }
        for level in Self.levels {
            #expect(try SpargeCPU.withLevel(level) { try SpargeCPU.currentLevel() } == level)
        }
    }

    /// The row work on tiles of several row groups and a remainder (36 rows: the 8- and 16-lane
    /// sets reduce groups of 8 or 16 rows together, the rest one by one), rows with a tail
    /// (72 columns): maxima exact, exponentials and sums within rounding of the scalar twins,
    /// the fused fixed-point step bit for bit the two steps of its own set.
    @Test(arguments: levels)
    func rowWorkOverRowGroups(level: CPUKernelLevel) throws {
        let k = try #require(SpargeCPU.kernels(for: level)), scalar = SpargeSIMD.ScalarKernels.self
        var rng = TestRNG(seed: 0x5EED_0036)
        let rows = 36, cols = 72
        var tile = rng.gaussians(rows * cols, scale: 4)
        for c in 0..<cols { tile[3 * cols + c] = -.infinity; tile[17 * cols + c] = c == 70 ? 2 : -.infinity }
        tile[20 * cols + 5] = .nan  // ignored by the maxima
        var mFast = [Float](repeating: 0, count: rows), mSlow = mFast
        k.rowMaxima(tile, stride: cols, rows: rows, columns: cols, into: &mFast)
        scalar.rowMaxima(tile, stride: cols, rows: rows, columns: cols, into: &mSlow)
        #expect(mFast == mSlow && mFast[3] == -.infinity && mFast[17] == 2, "\(level) rowMaxima")
        tile[20 * cols + 5] = 0
        mFast[3] = .infinity  // a row with nothing visible: all zeros
        var eFast = tile, eSlow = tile, sFast = [Float](repeating: -1, count: rows), sSlow = sFast
        k.exponentiateRows(&eFast, stride: cols, rows: rows, columns: cols, shifts: mFast, sums: &sFast)
        scalar.exponentiateRows(&eSlow, stride: cols, rows: rows, columns: cols, shifts: mFast, sums: &sSlow)
        #expect(try Self.relativeL2(eFast, eSlow.map(Double.init)) < 1e-6, "\(level) exponentiateRows")
        #expect(try Self.relativeL2(sFast, sSlow.map(Double.init)) < 1e-6, "\(level) exponentiateRows sums")
        #expect(sFast[3] == 0 && sFast[17] == 1 && eFast[17 * cols + 70] == 1)
        var fused = tile, twoSteps = tile
        var wordsFused = [Int32](repeating: -1, count: rows * cols / 2), wordsTwo = wordsFused
        var stepsFused = [Float](repeating: -1, count: rows), stepsTwo = stepsFused, sumsFused = stepsFused, sumsTwo = stepsFused
        k.exponentiateQuantizeRows(&fused, stride: cols, rows: rows, columns: cols, shifts: mFast, sums: &sumsFused,
                                   into: &wordsFused, pairStride: cols / 2, scales: &stepsFused)
        k.exponentiateRows(&twoSteps, stride: cols, rows: rows, columns: cols, shifts: mFast, sums: &sumsTwo)
        k.quantizeProbabilityRows(twoSteps, stride: cols, rows: rows, columns: cols, into: &wordsTwo, pairStride: cols / 2, scales: &stepsTwo)
        #expect(wordsFused == wordsTwo && stepsFused.map(\.bitPattern) == stepsTwo.map(\.bitPattern), "\(level) exponentiateQuantizeRows")
        #expect(sumsFused.map(\.bitPattern) == sumsTwo.map(\.bitPattern) && fused.map(\.bitPattern) == twoSteps.map(\.bitPattern))
        #expect(stepsFused[3] == 0 && wordsFused[(3 * cols / 2)..<(4 * cols / 2)].allSatisfy { $0 == 0 })
        #expect(wordsFused[17 * cols / 2 + 35] == 8191, "a row's largest P is level 8191")
    }

    /// Fixed-point P.V at its documented bound (64 keys, p = 8191, |v| = 4095): the int32 sums
    /// do not overflow on any level.
    @Test(arguments: levels)
    func fixedPointValueSumsAtTheirBound(level: CPUKernelLevel) throws {
        let k = try #require(SpargeCPU.kernels(for: level))
        let rows = 4, cols = 64, pairs = fixedPointKeysPerSum / 2
        let p = [Int32](repeating: 8191 | 8191 << 16, count: rows * pairs)
        for sign: Int16 in [1, -1] {
            let v = [Int16](repeating: 4095 * sign, count: pairs * cols * 2)
            var o = [Float](repeating: 0, count: rows * cols)
            k.accumulatePairProducts(p: p, pStride: pairs, rows: rows, v: v, columns: cols, pairs: pairs,
                                     rowScales: [1, 1, 1, 1], columnScales: [Float](repeating: 1, count: cols), o: &o, oStride: cols)
            #expect(o.allSatisfy { $0 == Float(Int32(sign) * 64 * 8191 * 4095) }, "\(level) sign \(sign)")
        }
    }

    /// Each entry point of each level against `ScalarKernels` on tiles with padding and tails.
    @Test(arguments: levels, [1, 3, 24, 64, 80, 256])
    func tileKernelsMatchScalarTwins(level: CPUKernelLevel, d: Int) throws {
        let k = try #require(SpargeCPU.kernels(for: level))
        let scalar: any TileKernels.Type = ScalarKernels.self
        var rng = TestRNG(seed: UInt64(d * 7 + 1))
        let rows = 8, cols = 64, pairs = pairCount(d)
        // INT8 scores: exact integer sums, so every level must agree bit for bit, each on
        // operands packed in its own layout (int16 pairs, or quads with VNNI).
        let q8 = (0..<(rows * d)).map { _ in Int8(rng.int(-128...127)) }, k8 = (0..<(cols * d)).map { _ in Int8(rng.int(-128...127)) }
        var fast = [Float](repeating: 0, count: rows * cols), slow = fast
        SpargeCPU.packedScoreTile(k, q8: q8, k8: k8, rows: rows, columns: cols, d: d, terms: nil, out: &fast)
        SpargeCPU.packedScoreTile(scalar, q8: q8, k8: k8, rows: rows, columns: cols, d: d, terms: nil, out: &slow)
        #expect(fast == slow, "\(level) int8ScoreTile d=\(d)")
        // Against plain int8 dot products: the packings lose nothing.
        let exact = (0..<(rows * cols)).map { i in
            Float((0..<d).reduce(Int32(0)) { $0 + Int32(q8[i / cols * d + $1]) * Int32(k8[i % cols * d + $1]) }) * 0.37
        }
        #expect(slow == exact, "\(level) int8ScoreTile d=\(d) against int8 dot products")
        // With per-column terms (Q smoothing): a multiply then an add on every set, bit for bit.
        let terms = rng.gaussians(cols, scale: 50)
        SpargeCPU.packedScoreTile(k, q8: q8, k8: k8, rows: rows, columns: cols, d: d, terms: terms, out: &fast)
        SpargeCPU.packedScoreTile(scalar, q8: q8, k8: k8, rows: rows, columns: cols, d: d, terms: terms, out: &slow)
        #expect(fast.map(\.bitPattern) == slow.map(\.bitPattern), "\(level) int8ScoreTile with terms d=\(d)")
        // Fixed-point P.V (13-bit P, 12-bit V, channels = 64 columns, up to 32 key pairs): exact sums,
        // then a multiply, a multiply and an add on every set, bit for bit.
        let fixedPairs = min(pairs, fixedPointKeysPerSum / 2)
        let pFixed = (0..<(rows * fixedPairs)).map { _ in Int32(truncatingIfNeeded: rng.int(0...8191)) | Int32(rng.int(0...8191)) << 16 }
        let vFixed = (0..<(fixedPairs * cols * 2)).map { _ in Int16(rng.int(-4095...4095)) }
        let rowScales = rng.gaussians(rows), columnScales = rng.gaussians(cols)
        var accFast = rng.gaussians(rows * cols), accSlow = accFast
        k.accumulatePairProducts(p: pFixed, pStride: fixedPairs, rows: rows, v: vFixed, columns: cols, pairs: fixedPairs,
                                 rowScales: rowScales, columnScales: columnScales, o: &accFast, oStride: cols)
        scalar.accumulatePairProducts(p: pFixed, pStride: fixedPairs, rows: rows, v: vFixed, columns: cols, pairs: fixedPairs,
                                      rowScales: rowScales, columnScales: columnScales, o: &accSlow, oStride: cols)
        #expect(accFast.map(\.bitPattern) == accSlow.map(\.bitPattern), "\(level) accumulatePairProducts pairs=\(fixedPairs)")
        // The P side: per-row 13-bit levels in key pairs (row 1 all zeros, row 2 one tiny value).
        var probabilities = (0..<(rows * cols)).map { _ in Float(rng.int(0...1000)) / 1000 * 0.7 }
        for c in 0..<cols { probabilities[cols + c] = 0; probabilities[2 * cols + c] = c == 5 ? 1e-30 : 0 }
        var wordsFast = [Int32](repeating: -1, count: rows * cols / 2), wordsSlow = wordsFast
        var stepsFast = [Float](repeating: -1, count: rows), stepsSlow = stepsFast
        k.quantizeProbabilityRows(probabilities, stride: cols, rows: rows, columns: cols, into: &wordsFast, pairStride: cols / 2, scales: &stepsFast)
        scalar.quantizeProbabilityRows(probabilities, stride: cols, rows: rows, columns: cols, into: &wordsSlow, pairStride: cols / 2, scales: &stepsSlow)
        #expect(wordsFast == wordsSlow && stepsFast.map(\.bitPattern) == stepsSlow.map(\.bitPattern), "\(level) quantizeProbabilityRows")
        #expect(wordsFast[(cols / 2)..<cols].allSatisfy { $0 == 0 } && stepsFast[1] == 0)
        #expect(wordsFast[cols + 2] == 8191 << 16, "the tiny value is its row's maximum")
        // The fused softmax step: exponentials and levels in one pass, the same bits as the two
        // steps of the same set (one row far below its shift: all flushed to 0; 8 columns short of
        // the tile, so the 16-lane set runs its 8-lane tail).
        var scoresFast = (0..<(rows * cols)).map { _ in Float(rng.int(-4000...0)) / 100 }
        for c in 0..<cols { scoresFast[cols + c] = -200 }
        var scoresSlow = scoresFast
        let shifts = (0..<rows).map { _ in Float(rng.int(0...300)) / 100 }
        var pSumsFast = [Float](repeating: -1, count: rows), pSumsSlow = pSumsFast
        k.exponentiateQuantizeRows(&scoresFast, stride: cols, rows: rows, columns: cols - 8, shifts: shifts, sums: &pSumsFast,
                                   into: &wordsFast, pairStride: cols / 2, scales: &stepsFast)
        k.exponentiateRows(&scoresSlow, stride: cols, rows: rows, columns: cols - 8, shifts: shifts, sums: &pSumsSlow)
        k.quantizeProbabilityRows(scoresSlow, stride: cols, rows: rows, columns: cols - 8, into: &wordsSlow, pairStride: cols / 2, scales: &stepsSlow)
        #expect(wordsFast == wordsSlow && stepsFast.map(\.bitPattern) == stepsSlow.map(\.bitPattern), "\(level) exponentiateQuantizeRows")
        #expect(pSumsFast.map(\.bitPattern) == pSumsSlow.map(\.bitPattern) && scoresFast.map(\.bitPattern) == scoresSlow.map(\.bitPattern),
                "\(level) exponentiateQuantizeRows: P and its sums as exponentiateRows gives them")
        #expect(wordsFast[(cols / 2)..<(cols - 4)].allSatisfy { $0 == 0 } && stepsFast[1] == 0)
        // The V side: per-channel 12-bit levels, pair-major over an odd number of keys (37), a
        // channel of zeros.
        var values = rng.gaussians(37 * 70, scale: 3)
        for t in 0..<37 { values[t * 70 + 9] = 0 }
        var packedFast = [Int16](repeating: -1, count: 19 * 64 * 2), packedSlow = packedFast
        var vStepsFast = [Float](repeating: -1, count: 64), vStepsSlow = vStepsFast
        k.quantizeValueBlock(values, stride: 70, keys: 37, columns: 64, into: &packedFast, steps: &vStepsFast)
        scalar.quantizeValueBlock(values, stride: 70, keys: 37, columns: 64, into: &packedSlow, steps: &vStepsSlow)
        #expect(packedFast == packedSlow && vStepsFast.map(\.bitPattern) == vStepsSlow.map(\.bitPattern), "\(level) quantizeValueBlock")
        #expect(vStepsFast[9] == 0 && packedFast.allSatisfy { abs(Int($0)) <= 4095 })
        #expect((0..<64).allSatisfy { packedFast[(18 * 64 + $0) * 2 + 1] == 0 }, "the odd last key's partner is 0")
        // fp32 scores and P.V within rounding.
        let q = rng.gaussians(rows * d), kT = rng.gaussians(d * cols)
        k.floatScoreTile(q: q, qStride: d, rows: rows, kT: kT, columns: cols, depth: d, out: &fast, outStride: cols)
        scalar.floatScoreTile(q: q, qStride: d, rows: rows, kT: kT, columns: cols, depth: d, out: &slow, outStride: cols)
        #expect(try Self.relativeL2(fast, slow.map(Double.init)) < 1e-6, "\(level) floatScoreTile d=\(d)")
        // One row against the key columns (Q smoothing's terms): 56 columns, a 4-vector body and tails.
        var rowFast = [Float](repeating: 0, count: 56), rowSlow = rowFast
        k.rowTimesColumns(q, kT: kT, columns: 56, depth: d, out: &rowFast)
        scalar.rowTimesColumns(q, kT: kT, columns: 56, depth: d, out: &rowSlow)
        #expect(try Self.relativeL2(rowFast, rowSlow.map(Double.init)) < 1e-6, "\(level) rowTimesColumns d=\(d)")
        let width = (d + 7) / 8 * 8
        let v = rng.gaussians(cols * width)
        var oFast = rng.gaussians(rows * width), oSlow = oFast
        k.accumulateProbabilityValue(p: slow, pStride: cols, rows: rows, count: cols - 3, v: v, vStride: width, width: width, o: &oFast, oStride: width)
        scalar.accumulateProbabilityValue(p: slow, pStride: cols, rows: rows, count: cols - 3, v: v, vStride: width, width: width, o: &oSlow, oStride: width)
        #expect(try Self.relativeL2(oFast, oSlow.map(Double.init)) < 1e-6, "\(level) accumulateProbabilityValue width=\(width)")
        // Row maxima (exact), exponentials with row sums, rescaling.
        var tile = rng.gaussians(rows * cols, scale: 4)
        for c in 40..<cols { tile[cols + c] = -.infinity }
        var mFast = [Float](repeating: 0, count: rows), mSlow = mFast
        k.rowMaxima(tile, stride: cols, rows: rows, columns: cols, into: &mFast)
        scalar.rowMaxima(tile, stride: cols, rows: rows, columns: cols, into: &mSlow)
        #expect(mFast == mSlow)
        var eFast = tile, eSlow = tile, sFast = mFast, sSlow = mFast
        k.exponentiateRows(&eFast, stride: cols, rows: rows, columns: cols, shifts: mFast, sums: &sFast)
        scalar.exponentiateRows(&eSlow, stride: cols, rows: rows, columns: cols, shifts: mFast, sums: &sSlow)
        #expect(try Self.relativeL2(eFast, eSlow.map(Double.init)) < 1e-6)
        #expect(try Self.relativeL2(sFast, sSlow.map(Double.init)) < 1e-6)
        #expect(eFast[cols + 50] == 0, "masked scores give exactly 0")
        k.scaleRows(&eFast, stride: cols, rows: rows, columns: width < cols ? width : cols, factors: sFast)
        scalar.scaleRows(&eSlow, stride: cols, rows: rows, columns: width < cols ? width : cols, factors: sFast)
        #expect(try Self.relativeL2(eFast, eSlow.map(Double.init)) < 1e-6)
        // Stage 1's block statistics and the INT8 quantization: bitwise the same on every set
        // (masks and INT8 tensors must not depend on the level), including rows with huge,
        // tiny and zero values.
        var x = rng.gaussians(rows * d, scale: 3)
        x[0] = 1e30; x[min(5, x.count - 1)] = -1e-30
        if rows * d > 16 { for c in 8..<16 { x[c] = 0 } }
        var sumsFast = [Float](repeating: 0.5, count: d), unitFast = sumsFast, sumsSlow = sumsFast, unitSlow = sumsFast
        let largestFast = k.blockRowSums(x, rows: rows, d: d, sums: &sumsFast, unitSums: &unitFast)
        let largestSlow = scalar.blockRowSums(x, rows: rows, d: d, sums: &sumsSlow, unitSums: &unitSlow)
        #expect(sumsFast.map(\.bitPattern) == sumsSlow.map(\.bitPattern), "\(level) blockRowSums d=\(d)")
        #expect(unitFast.map(\.bitPattern) == unitSlow.map(\.bitPattern), "\(level) unit-row sums d=\(d)")
        // The largest |x| found on the way is the quantizer's own (so it can skip its pass).
        let largest = x.reduce(Float(0)) { Swift.max($0, abs($1)) }
        #expect(largestFast.bitPattern == largest.bitPattern && largestSlow.bitPattern == largest.bitPattern, "\(level) largest d=\(d)")
        var int8Fast = [Int8](repeating: 0, count: x.count), int8Slow = int8Fast, int8Given = int8Fast
        let scaleFast = k.quantizeBlock(x, count: x.count, premultiplier: 0.18, into: &int8Fast)
        let scaleSlow = scalar.quantizeBlock(x, count: x.count, premultiplier: 0.18, into: &int8Slow)
        let scaleGiven = k.quantizeBlock(x, count: x.count, premultiplier: 0.18, largest: largestFast, into: &int8Given)
        #expect(scaleFast.bitPattern == scaleSlow.bitPattern && int8Fast == int8Slow, "\(level) quantizeBlock d=\(d)")
        #expect(scaleGiven.bitPattern == scaleFast.bitPattern && int8Given == int8Fast, "\(level) quantizeBlock given the largest d=\(d)")
        // NaN is ignored and an infinity is the largest, as the quantizer's own pass has them.
        for special in [Float.nan, -Float.infinity] {
            var y = x
            y[y.count / 2] = special
            var s1 = [Float](repeating: 0, count: d), u1 = s1, s2 = s1, u2 = s1
            let fast = k.blockRowSums(y, rows: rows, d: d, sums: &s1, unitSums: &u1)
            let slow = scalar.blockRowSums(y, rows: rows, d: d, sums: &s2, unitSums: &u2)
            let own = y.withUnsafeBufferPointer { absoluteMax($0.baseAddress!, count: y.count) }
            #expect(fast.bitPattern == own.bitPattern && slow.bitPattern == own.bitPattern, "\(level) largest with \(special) d=\(d)")
        }
        // K's mean subtracted on the same pass (rows `d + 3` apart): the centred rows, their sums
        // and largest |x| bit for bit those of subtracting first and summing after, on every set.
        let keyStride = d + 3
        let keys = rng.gaussians(rows * keyStride, scale: 3), mean = rng.gaussians(d, scale: 0.5)
        var centeredFast = [Float](repeating: -1, count: rows * d), centeredSlow = centeredFast, centeredApart = centeredFast
        var cs1 = [Float](repeating: 0.25, count: d), cu1 = cs1, cs2 = cs1, cu2 = cs1, cs3 = cs1, cu3 = cs1
        let cFast = k.centeredBlockRowSums(keys, rows: rows, stride: keyStride, d: d, mean: mean, into: &centeredFast, sums: &cs1, unitSums: &cu1)
        let cSlow = scalar.centeredBlockRowSums(keys, rows: rows, stride: keyStride, d: d, mean: mean, into: &centeredSlow, sums: &cs2, unitSums: &cu2)
        k.subtractFromRows(keys, rows: rows, stride: keyStride, d: d, mean: mean, into: &centeredApart)
        let cApart = k.blockRowSums(centeredApart, rows: rows, d: d, sums: &cs3, unitSums: &cu3)
        #expect(centeredFast.map(\.bitPattern) == centeredSlow.map(\.bitPattern) && centeredFast.map(\.bitPattern) == centeredApart.map(\.bitPattern),
                "\(level) centeredBlockRowSums rows d=\(d)")
        #expect(cs1.map(\.bitPattern) == cs2.map(\.bitPattern) && cs1.map(\.bitPattern) == cs3.map(\.bitPattern)
                && cu1.map(\.bitPattern) == cu2.map(\.bitPattern) && cu1.map(\.bitPattern) == cu3.map(\.bitPattern),
                "\(level) centeredBlockRowSums sums d=\(d)")
        #expect(cFast.bitPattern == cSlow.bitPattern && cFast.bitPattern == cApart.bitPattern, "\(level) centeredBlockRowSums largest d=\(d)")
        // Values on and next to rounding boundaries (k + 0.5 steps of the block's scale), where
        // the vector loop divides instead of multiplying: the same bytes on every set.
        var edges = rng.gaussians(rows * d, scale: 2)
        edges[edges.count - 1] = 5
        let step = 5 / Float(127) + 1e-7
        for i in stride(from: 0, to: edges.count - 1, by: 3) {
            let edge = (Float(i % 120) + 0.5) * step * (i % 2 == 0 ? 1 : -1)
            edges[i] = i % 9 == 0 ? edge : (i % 9 == 3 ? edge.nextUp : edge.nextDown)
        }
        let edgeScaleFast = k.quantizeBlock(edges, count: edges.count, premultiplier: 1, into: &int8Fast)
        let edgeScaleSlow = scalar.quantizeBlock(edges, count: edges.count, premultiplier: 1, into: &int8Slow)
        #expect(edgeScaleFast.bitPattern == edgeScaleSlow.bitPattern && int8Fast == int8Slow, "\(level) quantizeBlock at boundaries d=\(d)")
    }


    /// The quad layout's key packing (16 x 16 word transposes in the VNNI set) writes the bytes
    /// of the portable word-by-word packing: keys in and out of whole 16-key groups, channels in
    /// and out of whole 64-byte groups, a row stride longer than the row, padding columns.
    @Test(arguments: levels, [1, 3, 24, 63, 64, 65, 80, 128, 256])
    func quadKeyPackingMatchesThePortableOne(level: CPUKernelLevel, d: Int) throws {
        let k = try #require(SpargeCPU.kernels(for: level))
        guard k.scoreRowPadding == zeroQuadWord else { return }  // this set packs int16 pairs
        var rng = TestRNG(seed: UInt64(d * 13 + 5))
        let columns = 64, stride = d + 5
        for keys in [1, 15, 16, 17, 45, 64] {
            let k8 = (0..<(keys * stride)).map { _ in Int8(rng.int(-128...127)) }
            let words = (pairCount(d) + 1) * columns
            var fast = [Int16](repeating: -1, count: words * 2), slow = fast
            k.packScoreKeys(k8, rows: keys, d: d, stride: stride, columns: columns, into: &fast)
            slow.withUnsafeMutableBytes { packColumnQuads(k8, rows: keys, d: d, stride: stride, columns: columns, into: $0.baseAddress!) }
            #expect(fast == slow, "\(level) keys \(keys) d=\(d)")
        }
    }
    /// The exact decode path's score tile (query rows against key rows read in place): within
    /// rounding of float64 dot products and of the scalar twin, each score the same bits
    /// whatever tile computes it (one row block and one key alone, or the whole tile), and over
    /// fp16 / bf16 keys the bits of the fp32 tile on the widened keys. Depths with and without
    /// 8- and 16-lane tails; an odd key count; a key stride longer than the row.
    @Test(arguments: levels, [1, 3, 8, 17, 24, 64, 72, 128, 136, 256])
    func keyRowScoreTileMatchesFloat64(level: CPUKernelLevel, d: Int) throws {
        let k = try #require(SpargeCPU.kernels(for: level))
        var rng = TestRNG(seed: UInt64(d * 31 + 7))
        let rows = 8, count = 37, kStride = d + 3, outStride = 40
        let q = rng.gaussians(rows * d), keys = rng.gaussians(count * kStride, scale: 2)
        var fast = [Float](repeating: .nan, count: rows * outStride), slow = fast
        k.keyRowScoreTile(q: q, qStride: d, rows: rows, k: keys, kStride: kStride, count: count, depth: d, out: &fast, outStride: outStride)
        ScalarKernels.keyRowScoreTile(q: q, qStride: d, rows: rows, k: keys, kStride: kStride, count: count, depth: d,
                                      out: &slow, outStride: outStride)
        var worst = 0.0
        for r in 0..<rows {
            for j in 0..<count {
                let exact = (0..<d).reduce(0.0) { $0 + Double(q[r * d + $1]) * Double(keys[j * kStride + $1]) }
                let bound = (0..<d).reduce(0.0) { $0 + abs(Double(q[r * d + $1]) * Double(keys[j * kStride + $1])) }
                worst = max(worst, abs(Double(fast[r * outStride + j]) - exact) / bound, abs(Double(slow[r * outStride + j]) - exact) / bound)
            }
        }
        #expect(worst < Double(d) * 1.2e-7, "\(level) d=\(d): error \(worst) of the sum of |products|")
        // One row block and one key at a time: the same bits.
        for (r, j) in [(4, 0), (0, 36), (4, 17)] {
            var alone = [Float](repeating: .nan, count: 4)
            k.keyRowScoreTile(q: Array(q[(r * d)...]), qStride: d, rows: 4, k: Array(keys[(j * kStride)...]), kStride: kStride,
                              count: 1, depth: d, out: &alone, outStride: 1)
            #expect(alone[0].bitPattern == fast[r * outStride + j].bitPattern, "\(level) d=\(d) row \(r) key \(j)")
        }
        // 16-bit keys: the fp32 tile's bits on the widened keys.
        for bfloat16 in [false, true] {
            let bits = keys.map { bfloat16 ? BFloat16($0).bitPattern : Float16($0).bitPattern }
            let widened = bits.map { bfloat16 ? Float(bitPattern: UInt32($0) << 16) : Float(Float16(bitPattern: $0)) }
            var half = [Float](repeating: .nan, count: rows * outStride), wide = half
            k.halfKeyRowScoreTile(q: q, qStride: d, rows: rows, k: bits, kStride: kStride, count: count, depth: d, bfloat16: bfloat16,
                                  out: &half, outStride: outStride)
            k.keyRowScoreTile(q: q, qStride: d, rows: rows, k: widened, kStride: kStride, count: count, depth: d,
                              out: &wide, outStride: outStride)
            #expect(half.map(\.bitPattern) == wide.map(\.bitPattern), "\(level) d=\(d) bf16 \(bfloat16)")
            ScalarKernels.halfKeyRowScoreTile(q: q, qStride: d, rows: rows, k: bits, kStride: kStride, count: count, depth: d,
                                              bfloat16: bfloat16, out: &half, outStride: outStride)
            ScalarKernels.keyRowScoreTile(q: q, qStride: d, rows: rows, k: widened, kStride: kStride, count: count, depth: d,
                                          out: &wide, outStride: outStride)
            #expect(half.map(\.bitPattern) == wide.map(\.bitPattern), "scalar twin d=\(d) bf16 \(bfloat16)")
        }
    }

    /// Stage 1's compressed scores from the channel-major table: at every level the scalar
    /// loop's bits (products rounded, added in channel order), for row counts across the 4-row
    /// tile, column counts across one, two and four vectors and their tails, and any depth.
    @Test(arguments: levels, [1, 2, 7, 64, 128, 130])
    func channelMajorScoresHaveTheScalarBits(level: CPUKernelLevel, channels: Int) throws {
        let k = try #require(SpargeCPU.kernels(for: level))
        var rng = TestRNG(seed: UInt64(channels * 17 + 3))
        for (rows, columns) in [(1, 1), (1, 15), (1, 16), (1, 63), (1, 64), (1, 97), (3, 40), (4, 32), (4, 33), (5, 64), (9, 130)] {
            let qStride = channels + 2, tableStride = columns + 5, outStride = columns + 1
            let q = rng.gaussians(rows * qStride), table = rng.gaussians(channels * tableStride, scale: 3)
            var fast = [Float](repeating: .nan, count: rows * outStride), slow = fast
            k.channelMajorScores(q: q, qStride: qStride, rows: rows, table: table, tableStride: tableStride, channels: channels,
                                 columns: columns, out: &fast, outStride: outStride)
            ScalarKernels.channelMajorScores(q: q, qStride: qStride, rows: rows, table: table, tableStride: tableStride,
                                             channels: channels, columns: columns, out: &slow, outStride: outStride)
            #expect(fast.map(\.bitPattern) == slow.map(\.bitPattern), "\(level) \(rows) x \(columns) x \(channels)")
            var plain = [Float](repeating: .nan, count: rows * outStride)
            for r in 0..<rows {
                for j in 0..<columns {
                    var dot: Float = 0
                    for c in 0..<channels { dot += q[r * qStride + c] * table[c * tableStride + j] }
                    plain[r * outStride + j] = dot
                }
            }
            #expect(plain.map(\.bitPattern) == slow.map(\.bitPattern), "scalar twin \(rows) x \(columns) x \(channels)")
        }
    }

    /// Exact KV-cache decoding at each level against float64 (output and LSE): group sizes 1,
    /// 3 and 4 (4, 3 and 12 rows, so padded row blocks), one and two queries, causal or not,
    /// depths with tails, key counts across several chunks and a partial tile.
    @Test(arguments: levels, [(1, 1, 1), (6, 2, 20), (4, 1, 72), (8, 8, 128)])
    func exactDecodeAtEachLevelMatchesFloat64(level: CPUKernelLevel, shape: (heads: Int, kvHeads: Int, d: Int)) throws {
        var rng = TestRNG(seed: UInt64(shape.d * 5 + shape.heads))
        let n = 4_500 + shape.d   // three chunks of 2048 keys, the last partial, its last tile too
        let k = rng.gaussians(shape.kvHeads * n * shape.d), v = rng.gaussians(shape.kvHeads * n * shape.d)
        try SpargeCPU.withLevel(level) {
            for causal in [true, false] {
                var p = SpargeParameters.recommended
                p.causal = causal
                let cache = try SpargeKVCache(heads: shape.heads, kvHeads: shape.kvHeads, headDim: shape.d, capacity: n, parameters: p)
                try KVCacheTests.append(cache, k, v, tokens: n)
                for queries in [1, 2] {
                    let q = rng.gaussians(shape.heads * queries * shape.d)
                    var out = [Float](repeating: 0, count: q.count), lse = [Float](repeating: 0, count: shape.heads * queries)
                    try cache.attendExact(q: q, output: &out, queries: queries, lse: &lse)
                    let s = AttentionShape(heads: shape.heads, kvHeads: shape.kvHeads, queryLength: queries, keyLength: n,
                                           headDim: shape.d)
                    let ref = try Float64Reference.attentionWithLSE(q: q, k: k, v: v, shape: s, causalOffset: causal ? n - queries : nil)
                    let label = "\(level) \(shape) causal \(causal) Nq \(queries)"
                    #expect(try Accuracy(out, reference: ref.output).relativeL2 <= 1e-5, "\(label)")
                    #expect(zip(lse, ref.lse).map { abs(Double($0) - $1) }.max()! <= 1e-4, "\(label) lse")
                }
            }
        }
    }

    /// (Nq, Nk, D, heads, kvHeads, causal): ragged, below a block, GQA, Nq != Nk, D 1...256.
    static let shapes: [(nq: Int, nk: Int, d: Int, h: Int, hkv: Int, causal: Bool)] = [
        (1, 1, 1, 1, 1, false), (5, 70, 3, 2, 1, true), (200, 200, 64, 4, 2, true), (130, 77, 80, 2, 2, false),
        (300, 300, 128, 2, 1, true), (70, 257, 256, 1, 1, false), (129, 600, 24, 3, 3, true), (64, 64, 8, 2, 2, false),
    ]

    @Test(arguments: levels, 0..<shapes.count)
    func attentionMatchesFloat64AtEveryLevel(level: CPUKernelLevel, index: Int) throws {
        let c = Self.shapes[index]
        var rng = TestRNG(seed: UInt64(300 + index))
        let shape = AttentionShape(batch: 1, heads: c.h, kvHeads: c.hkv, queryLength: c.nq, keyLength: c.nk, headDim: c.d)
        let q = rng.gaussians(shape.queryElements, scale: 2), k = rng.gaussians(shape.keyElements, scale: 2)
        let v = rng.gaussians(shape.keyElements)
        var p = SpargeParameters()
        p.causal = c.causal
        p.selection = .topK(PerHead(0.5))
        p.pvThreshold = PerHead(Float.infinity)
        try SpargeCPU.withLevel(level) {
            let dense = try SpargeAttention.dense(q: q, k: k, v: v, shape: shape, causal: c.causal)
            let exact = try Float64Reference.attention(q: q, k: k, v: v, shape: shape, causal: c.causal)
            #expect(try Self.relativeL2(dense, exact) < 2e-6, "\(level) dense \(shape)")
            let (out, result) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p)
            let masked = try Float64Reference.attention(q: q, k: k, v: v, shape: shape, causal: c.causal,
                                                    blockMap: result.blockMap, blockQ: p.blockQ, blockK: p.blockK)
            #expect(try Self.relativeL2(out, masked) < 0.05, "\(level) sparse \(shape)")
            // Q smoothing: the same map, and the output at least as close.
            var smoothed = p
            smoothed.smoothQ = true
            let (outQ, resultQ) = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: smoothed)
            #expect(resultQ.blockMap == result.blockMap, "\(level) smoothQ changed the map")
            #expect(try Self.relativeL2(outQ, masked) < 0.05, "\(level) sparse smoothQ \(shape)")
        }
    }

    /// The pipeline's K mean (64-row partial sums one chunk per work item, then per head) has
    /// the bits of the serial `keySmoothingMean`, for fp32 and bf16 keys, ragged key counts and
    /// 1 or 3 threads.
    @Test(arguments: [false, true], [1, 3])
    func keyMeanOfChunksEqualsTheSerialMean(bf16: Bool, threads: Int) throws {
        let shape = AttentionShape(batch: 2, heads: 4, kvHeads: 2, queryLength: 70, keyLength: 300, headDim: 24)
        var rng = TestRNG(seed: 77)
        let q = rng.gaussians(shape.queryElements), v = rng.gaussians(shape.keyElements)
        let k = rng.gaussians(shape.keyElements, scale: 3).map { bf16 ? BFloat16($0).float : $0 + 5 }
        let kHalf = k.map { BFloat16($0) }
        func run(_ keys: AttentionInput) throws -> [Float] {
            try q.withUnsafeBufferPointer { qb in
                try v.withUnsafeBufferPointer { vb in
                    var out = [Float](repeating: 0, count: shape.queryElements)
                    let r = try out.withUnsafeMutableBufferPointer { ob in
                        try SpargeAttention.sparse(q: AttentionInput(qb), k: keys, v: AttentionInput(vb), output: AttentionOutput(ob),
                                                   shape: shape, threads: threads, captureQuantized: true)
                    }
                    return try #require(r.quantized).kMean
                }
            }
        }
        let captured = bf16 ? try kHalf.withUnsafeBufferPointer { try run(AttentionInput($0)) }
                            : try k.withUnsafeBufferPointer { try run(AttentionInput($0)) }
        let d = shape.headDim
        var expected = [Float](repeating: 0, count: 2 * shape.kvHeads * d)
        var sums = [Double](repeating: 0, count: d), partial = [Float](repeating: 0, count: d), row = partial
        k.withUnsafeBytes { raw in
            let view = TensorView(base: raw.baseAddress!, batchStride: shape.kvHeads * shape.keyLength * d,
                                  headStride: shape.keyLength * d, rowStride: d)
            for head in 0..<(2 * shape.kvHeads) {
                expected.withUnsafeMutableBufferPointer { e in
                    keySmoothingMean(view, b: head / shape.kvHeads, h: head % shape.kvHeads, tokens: shape.keyLength, d: d,
                                     gpuRounding: false, into: e.baseAddress! + head * d, sums: &sums, partial: &partial, row: &row)
                }
            }
        }
        #expect(captured.map(\.bitPattern) == expected.map(\.bitPattern))
    }

    /// Masks and INT8 tensors are identical at every level; outputs agree within fp32 rounding;
    /// within a level, 1 and 3 threads give the same bits.
    @Test(arguments: 0..<shapes.count)
    func levelsAgreeAndThreadCountsAreBitwiseEqual(index: Int) throws {
        let c = Self.shapes[index]
        var rng = TestRNG(seed: UInt64(400 + index))
        let shape = AttentionShape(batch: 2, heads: c.h, kvHeads: c.hkv, queryLength: c.nq, keyLength: c.nk, headDim: c.d)
        let q = rng.gaussians(shape.queryElements), k = rng.gaussians(shape.keyElements), v = rng.gaussians(shape.keyElements)
        var p = SpargeParameters.sage2CDF
        p.causal = c.causal
        var baseline: (output: [Float], result: SparseAttentionResult)?
        var baselineQ: [Float]?
        for level in Self.levels {
            try SpargeCPU.withLevel(level) {
                let one = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, threads: 1, captureQuantized: true)
                let three = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, threads: 3, captureQuantized: true)
                #expect(one.output == three.output, "\(level): 1 vs 3 threads differ")
                var smoothed = p
                smoothed.smoothQ = true
                let oneQ = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: smoothed, threads: 1).output
                let threeQ = try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: smoothed, threads: 3).output
                #expect(oneQ == threeQ, "\(level) smoothQ: 1 vs 3 threads differ")
                if let baseQ = baselineQ {
                    #expect(try Self.relativeL2(oneQ, baseQ.map(Double.init)) < 1e-4, "\(level) smoothQ output vs baseline")
                } else {
                    baselineQ = oneQ
                }
                guard let base = baseline else { baseline = one; return }
                #expect(one.result.blockMap == base.result.blockMap, "\(level) block map differs from baseline")
                #expect(one.result.quantized == base.result.quantized, "\(level) INT8 tensors differ from baseline")
                #expect(try Self.relativeL2(one.output, base.output.map(Double.init)) < 1e-4, "\(level) output vs baseline")
            }
        }
    }
}
