import Foundation
import Testing
import SpargeSIMD

/// Each SIMD kernel against a plain scalar loop.
struct KernelTests {
    struct RNG {
        var s: UInt64
        mutating func next() -> Float {
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: s) >> 11) / Float(1 << 52)
        }
        mutating func int8() -> Int8 { Int8(truncatingIfNeeded: Int(next() * 254)) }
    }

    @Test func exp2MatchesFoundation() {
        var worst: Double = 0
        var x: Float = -126
        while x <= 0 {
            let v = exp2(Float8(repeating: x))
            let ref = Foundation.exp2(Double(x))
            worst = max(worst, abs(Double(v[0]) - ref) / ref)
            x += 0.0137
        }
        #expect(worst < 1e-6, "worst relative error \(worst)")
        #expect(exp2(Float8(repeating: -.infinity))[3] == 0)
        #expect(exp2(Float8(repeating: -200))[0] == 0)
        #expect(exp2(Float8(repeating: 0))[5] == 1)
    }

    /// The quad layout (QuadPacking.swift) read the way `vpdpbusd` reads it, unsigned query
    /// bytes times signed key bytes, minus the column's correction, is the int8 dot product.
    @Test(arguments: [1, 2, 3, 5, 16, 17, 64, 80, 256])
    func quadLayoutGivesTheInt8DotProducts(d: Int) {
        var rng = RNG(s: UInt64(d) &+ 99)
        let rows = 3, cols = 32, keys = 29, quads = quadCount(d)
        let q = (0..<(rows * d)).map { _ in rng.int8() }, k = (0..<(keys * d)).map { _ in rng.int8() }
        var qp = [Int32](repeating: 0, count: rows * quads), kp = [Int32](repeating: -1, count: (quads + 1) * cols)
        q.withUnsafeBufferPointer { qb in
            qp.withUnsafeMutableBufferPointer { for r in 0..<rows { packRowQuads(qb.baseAddress! + r * d, d: d, into: $0.baseAddress! + r * quads) } }
        }
        kp.withUnsafeMutableBytes { packColumnQuads(k, rows: keys, d: d, stride: d, columns: cols, into: $0.baseAddress!) }
        func bytes(_ w: Int32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: UInt32(bitPattern: w) >> (8 * $0)) } }
        for r in 0..<rows {
            for c in 0..<cols {
                var sum = 0
                for j in 0..<quads {
                    let a = bytes(qp[r * quads + j]), b = bytes(kp[j * cols + c])
                    for i in 0..<4 { sum += Int(a[i]) * Int(Int8(bitPattern: b[i])) }
                }
                var dot = 0
                if c < keys { for x in 0..<d { dot += Int(q[r * d + x]) * Int(k[c * d + x]) } }
                #expect(sum - Int(kp[quads * cols + c]) == dot, "row \(r) column \(c)")
            }
        }
    }

    @Test(arguments: [1, 2, 3, 17, 64, 80, 256])
    func int8ScoreTileMatchesScalar(d: Int) {
        var rng = RNG(s: UInt64(d))
        let rows = 8, cols = 32, pairs = pairCount(d)
        let q = (0..<(rows * d)).map { _ in rng.int8() }, k = (0..<(cols * d)).map { _ in rng.int8() }
        var qp = [Int32](repeating: 0, count: rows * pairs)
        var kp = [Int16](repeating: 0, count: (pairs + 1) * cols * 2)
        var out = [Float](repeating: 0, count: rows * cols)
        KernelSet.packScoreQueries(q, rows: rows, d: d, rowStride: pairs, rowsPad: rows, into: &qp)
        KernelSet.packScoreKeys(k, rows: cols, d: d, stride: d, columns: cols, into: &kp)
        KernelSet.int8ScoreTile(q: qp, qStride: pairs, rows: rows, k: kp, columns: cols, pairs: pairs, scale: 0.5, terms: nil, out: &out, outStride: cols)
        for r in 0..<rows {
            for c in 0..<cols {
                var dot = 0
                for x in 0..<d { dot += Int(q[r * d + x]) * Int(k[c * d + x]) }
                #expect(out[r * cols + c] == Float(dot) * 0.5)
            }
        }
    }

    @Test(arguments: [1, 3, 64, 129])
    func floatTilesMatchScalar(d: Int) {
        var rng = RNG(s: 42)
        let rows = 8, cols = 16
        let q = (0..<(rows * d)).map { _ in rng.next() }, k = (0..<(cols * d)).map { _ in rng.next() }
        var kT = [Float](repeating: 0, count: d * cols)
        k.withUnsafeBufferPointer { transposeBlock($0.baseAddress!, rows: cols, depth: d, stride: d, columns: cols, into: &kT) }
        var s = [Float](repeating: 0, count: rows * cols)
        KernelSet.floatScoreTile(q: q, qStride: d, rows: rows, kT: kT, columns: cols, depth: d, out: &s, outStride: cols)
        for r in 0..<rows {
            for c in 0..<cols {
                var dot = 0.0
                for x in 0..<d { dot += Double(q[r * d + x]) * Double(k[c * d + x]) }
                #expect(abs(Double(s[r * cols + c]) - dot) <= 1e-5 * Double(d))
            }
        }
        // P.V with a width that is 8 mod 16 exercises the tail group.
        let width = 24
        let v = (0..<(cols * width)).map { _ in rng.next() }
        var o = [Float](repeating: 1, count: rows * width)
        KernelSet.accumulateProbabilityValue(p: s, pStride: cols, rows: rows, count: cols, v: v, vStride: width, width: width, o: &o, oStride: width)
        for r in 0..<rows {
            for x in 0..<width {
                var ref = 1.0
                for c in 0..<cols { ref += Double(s[r * cols + c]) * Double(v[c * width + x]) }
                #expect(abs(Double(o[r * width + x]) - ref) <= 1e-4 * max(1, abs(ref)))
            }
        }
    }

    /// The SiLU gate against float64 over ordinary and extreme gates (no overflow inside: the
    /// result is finite wherever the true one is), and its scalar twin.
    @Test func siluGateMatchesFloat64() {
        var gate: [Float] = [0, -0.5, 0.5, 3, -3, 20, -20, 88, -88, 90, -90, 100, -100, 1e30, -1e30, 3e37, -3e37]
        var rng = RNG(s: 7)
        while gate.count < 203 { gate.append(rng.next() * 16) }
        let up = gate.indices.map { Float($0 % 7) - 2.5 }
        var out = [Float](repeating: .nan, count: gate.count), twin = out
        KernelSet.siluGate(gate, up, count: gate.count, into: &out)
        ScalarKernels.siluGate(gate, up, count: gate.count, into: &twin)
        for i in gate.indices {
            let g = Double(gate[i]), ref = g / (1 + Foundation.exp(-g)) * Double(up[i])
            // Below e^-87 the sigmoid flushes to 0: a result under about 1e-36 |up| becomes 0.
            #expect(out[i].isFinite && abs(Double(out[i]) - ref) <= 1e-6 * abs(ref) + 1e-35, "gate \(gate[i]): \(out[i]) vs \(ref)")
            #expect(abs(Double(out[i]) - Double(twin[i])) <= 1e-6 * abs(ref) + 1e-37, "twin at gate \(gate[i])")
        }
    }

    @Test func quantizationRoundsHalfAwayFromZero() {
        let x: [Float] = [0.5, -0.5, 1.5, -1.5, 2.49, -2.51, 127, -127, 0, 63.5]
        var out = [Int8](repeating: 0, count: x.count)
        quantizeRow(x, count: x.count, premultiplier: 1, scale: 1, into: &out)
        #expect(out == [1, -1, 2, -2, 2, -3, 127, -127, 0, 64])
        #expect(absoluteMax(x, count: x.count) == 127)
        let nan: [Float] = [.nan, .infinity, -.infinity]
        var o3 = [Int8](repeating: 5, count: 3)
        quantizeRow(nan, count: 3, premultiplier: 1, scale: 1, into: &o3)
        #expect(o3 == [0, 127, -127])
    }

    /// The vector loop multiplies by 1 / scale and divides only near a rounding boundary: the
    /// bytes must be those of the division everywhere, also for values placed on and next to
    /// the boundaries (k + 0.5) times the scale, with and without a premultiplier.
    @Test(arguments: [Float(1), 0.0721347])
    func quantizationMatchesTheDivisionEverywhere(premultiplier: Float) {
        var rng = RNG(s: 7)
        for _ in 0..<200 {
            let scale = (1 + abs(rng.next()) * 100) / 127 + 1e-7
            var x = (0..<256).map { _ in rng.next() * 127 * scale / premultiplier }
            for j in 0..<64 {  // k + 0.5 boundaries and their neighbours, a few ulps apart
                let k = Float(j % 127) + 0.5, edge = k * scale / premultiplier * (j % 2 == 0 ? 1 : -1)
                x[4 * j] = edge; x[4 * j + 1] = edge.nextUp; x[4 * j + 2] = edge.nextDown; x[4 * j + 3] = edge.nextUp.nextUp
            }
            var out = [Int8](repeating: 0, count: x.count)
            quantizeRow(x, count: x.count, premultiplier: premultiplier, scale: scale, into: &out)
            let divided = x.map { v -> Int8 in
                let y = (v * premultiplier) / scale
                let r = y >= 0 ? y + 0.5 : y - 0.5
                return Int8(max(-127, min(127, Int32(r))))
            }
            #expect(out == divided, "scale \(scale)")
        }
    }

    @Test func reductionsIgnoreOrderOfEqualLanes() {
        let x: [Float] = (0..<37).map { Float($0 % 11) - 5 }
        #expect(rowMax(x, count: x.count) == 5)
        #expect(horizontalSum(Float8(1, 2, 3, 4, 5, 6, 7, 8)) == 36)
        #expect(horizontalMax(Float8(1, 9, 3, 4, 5, 6, 7, 8)) == 9)
    }
}
