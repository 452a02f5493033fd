import Dispatch
import SpargeSIMD

// Throughput probes of a kernel set, for benchmarks (`sparge bench`): what the machine offers
// with that set's vectors, and what its score tiles reach. Not used by the attention calls.

extension SpargeCPU {
    /// fp32 multiply-add throughput in GFLOP/s of `level`'s vectors on `threads` threads.
    ///
    /// - Throws: ``SpargeError/unsupportedKernelLevel(requested:supported:source:)`` for a level
    ///   this build or processor lacks.
    public static func multiplyAddPeak(level: CPUKernelLevel, threads: Int, steps: Int = 20_000_000) throws -> Double {
        let k = try probeKernels(level)
        let lanes = k.lanes
        let clock = ContinuousClock()
        let start = clock.now
        DispatchQueue.concurrentPerform(iterations: Swift.max(1, threads)) { t in
            let sink = k.multiplyAddLoop(steps: steps, seed: Float(t + 1))
            if sink == 42 { print("") }  // keeps the loop alive
        }
        let seconds = (clock.now - start).seconds
        return Double(Swift.max(1, threads)) * Double(steps) * 12 * Double(lanes) * 2 / seconds / 1e9
    }

    /// fp32 and INT8 score-tile throughput (GFLOP/s and GOP/s) of `level` on one thread: a
    /// 128 x 64 tile with D = 64, `iterations` times, median of `repeats` runs.
    public static func scoreTileThroughput(level: CPUKernelLevel, iterations: Int = 20_000, repeats: Int = 3) throws
        -> (fp32: Double, int8: Double)
    {
        let k = try probeKernels(level)
        let rows = 128, cols = 64, d = 64, pairs = (d + 1) / 2
        let q = [Float](repeating: 0.01, count: rows * d), kT = [Float](repeating: 0.02, count: d * cols)
        var s = [Float](repeating: 0, count: rows * cols)
        let q8 = [Int8](repeating: 2, count: rows * d), k8 = [Int8](repeating: 3, count: cols * d)
        var qp = [Int32](repeating: 0, count: rows * pairs), kp = [Int16](repeating: 0, count: (pairs + 1) * cols * 2)
        k.packScoreQueries(q8, rows: rows, d: d, rowStride: pairs, rowsPad: rows, into: &qp)
        k.packScoreKeys(k8, rows: cols, d: d, stride: d, columns: cols, into: &kp)
        func time(_ body: () -> Void) -> Double { medianSeconds(iterations: iterations, repeats: repeats, body) }
        let fp = time { k.floatScoreTile(q: q, qStride: d, rows: rows, kT: kT, columns: cols, depth: d, out: &s, outStride: cols) }
        let i8 = time { k.int8ScoreTile(q: qp, qStride: pairs, rows: rows, k: kp, columns: cols, pairs: pairs, scale: 1, terms: nil, out: &s, outStride: cols) }
        let ops = Double(2 * rows * cols * d * iterations)
        return (ops / fp / 1e9, ops / i8 / 1e9)
    }

    /// P.V tile throughput (GFLOP/s, or GOP/s for fixed point) of `level` on one thread:
    /// `O += P V` for a 128 x 64 probability tile and D = 64 values, in fp32 and with the
    /// fixed-point operands of `accumulatePairProducts`, `iterations` times, median of `repeats` runs.
    public static func probabilityValueThroughput(level: CPUKernelLevel, iterations: Int = 20_000, repeats: Int = 3) throws
        -> (fp32: Double, fixedPoint: Double)
    {
        let k = try probeKernels(level)
        let rows = 128, cols = 64, d = 64, pairs = cols / 2
        let p = [Float](repeating: 1e-3, count: rows * cols), v = [Float](repeating: 0.5, count: cols * d)
        let pp = [Int32](repeating: 0x0003_0002, count: rows * pairs), vp = [Int16](repeating: 3, count: pairs * d * 2)
        let rowScales = [Float](repeating: 1e-3, count: rows), columnScales = [Float](repeating: 1e-3, count: d)
        var o = [Float](repeating: 0, count: rows * d)
        func time(_ body: () -> Void) -> Double { medianSeconds(iterations: iterations, repeats: repeats, body) }
        let fp = time { k.accumulateProbabilityValue(p: p, pStride: cols, rows: rows, count: cols, v: v, vStride: d, width: d, o: &o, oStride: d) }
        let fixed = time {
            k.accumulatePairProducts(p: pp, pStride: pairs, rows: rows, v: vp, columns: d, pairs: pairs,
                                     rowScales: rowScales, columnScales: columnScales, o: &o, oStride: d)
        }
        let ops = Double(2 * rows * cols * d * iterations)
        return (ops / fp / 1e9, ops / fixed / 1e9)
    }

    /// Whether `level`'s integer tile kernels (the INT8 score tile, with and without per-column
    /// terms, and the fixed-point P.V tile and its P and V quantizers) give the same bits as their
    /// scalar twins on random tiles of every column layout the kernel sets branch on (for
    /// `sparge selftest`).
    public static func integerKernelsMatchScalarTwins(level: CPUKernelLevel) throws -> Bool {
        let k = try probeKernels(level)
        var random = ProbeNumbers(state: 0x5EED)
        func next(_ range: ClosedRange<Int>) -> Int { random.next(range) }
        var same = true
        for (rows, columns, pairs) in [(4, 32, 1), (8, 64, 13), (12, 96, 32), (8, 128, 32)] {
            let a = (0..<(rows * pairs)).map { _ in Int32(truncatingIfNeeded: next(0...8191)) | Int32(next(0...8191)) << 16 }
            let b = (0..<(pairs * columns * 2)).map { _ in Int16(next(-4095...4095)) }
            let rowScales = (0..<rows).map { _ in Float(next(1...1000)) * 1e-4 }
            let columnScales = (0..<columns).map { _ in Float(next(1...1000)) * 1e-3 }
            // INT8 scores: each set packs random int8 rows (D = 2 * pairs - 1) in its own layout.
            let d = 2 * pairs - 1
            let q8 = (0..<(rows * d)).map { _ in Int8(next(-128...127)) }, k8 = (0..<(columns * d)).map { _ in Int8(next(-128...127)) }
            let scalar = SpargeSIMD.ScalarKernels.self
            for terms in [nil, columnScales] {
                var fast = [Float](repeating: 0, count: rows * columns), slow = fast
                packedScoreTile(k, q8: q8, k8: k8, rows: rows, columns: columns, d: d, terms: terms, out: &fast)
                packedScoreTile(scalar, q8: q8, k8: k8, rows: rows, columns: columns, d: d, terms: terms, out: &slow)
                same = same && fast.map(\.bitPattern) == slow.map(\.bitPattern)
            }
            var fast = (0..<(rows * columns)).map { Float($0 % 7) - 3 }, slow = fast
            k.accumulatePairProducts(p: a, pStride: pairs, rows: rows, v: b, columns: columns, pairs: pairs,
                                     rowScales: rowScales, columnScales: columnScales, o: &fast, oStride: columns)
            SpargeSIMD.ScalarKernels.accumulatePairProducts(p: a, pStride: pairs, rows: rows, v: b, columns: columns, pairs: pairs,
                                                 rowScales: rowScales, columnScales: columnScales, o: &slow, oStride: columns)
            same = same && fast.map(\.bitPattern) == slow.map(\.bitPattern)
            let probabilities = (0..<(rows * columns)).map { i in i % 5 == 0 ? 0 : Float(next(0...100_000)) * 1e-5 }
            var wordsFast = [Int32](repeating: 0, count: rows * columns / 2), wordsSlow = wordsFast
            var stepsFast = [Float](repeating: 0, count: rows), stepsSlow = stepsFast
            k.quantizeProbabilityRows(probabilities, stride: columns, rows: rows, columns: columns, into: &wordsFast,
                                      pairStride: columns / 2, scales: &stepsFast)
            SpargeSIMD.ScalarKernels.quantizeProbabilityRows(probabilities, stride: columns, rows: rows, columns: columns,
                                                             into: &wordsSlow, pairStride: columns / 2, scales: &stepsSlow)
            same = same && wordsFast == wordsSlow && stepsFast.map(\.bitPattern) == stepsSlow.map(\.bitPattern)
            let keys = 2 * pairs - 1, values = (0..<(keys * columns)).map { _ in Float(next(-100_000...100_000)) * 1e-3 }
            var packedFast = [Int16](repeating: 0, count: pairs * columns * 2), packedSlow = packedFast
            var vStepsFast = [Float](repeating: 0, count: columns), vStepsSlow = vStepsFast
            k.quantizeValueBlock(values, stride: columns, keys: keys, columns: columns, into: &packedFast, steps: &vStepsFast)
            SpargeSIMD.ScalarKernels.quantizeValueBlock(values, stride: columns, keys: keys, columns: columns, into: &packedSlow, steps: &vStepsSlow)
            same = same && packedFast == packedSlow && vStepsFast.map(\.bitPattern) == vStepsSlow.map(\.bitPattern)
        }
        return same
    }

    /// Whether `level`'s P.V tile over 16-bit values (a KV cache's fp16 or bf16 storage) gives
    /// the bits of its fp32 tile over the widened values: every fp16 bit pattern read alone
    /// (NaN staying NaN), then random fp16 and bf16 tiles of widths the kernel sets branch on
    /// (for `sparge selftest`).
    public static func halfValueKernelMatchesWidenedValues(level: CPUKernelLevel) throws -> Bool {
        let k = try probeKernels(level)
        var same = true
        let patterns = (0..<65_536).map { UInt16($0) }
        let ones = [Float](repeating: 1, count: 4)
        for key in 0..<64 {
            var o = [Float](repeating: 0, count: 4 * 1024)
            patterns.withUnsafeBufferPointer { v in
                k.accumulateProbabilityHalfValue(p: ones, pStride: 1, rows: 4, count: 1, v: v.baseAddress! + key * 1024, vStride: 1024,
                                                 width: 1024, bfloat16: false, o: &o, oStride: 1024)
            }
            for c in 0..<1024 {
                let want = Float(Float16(bitPattern: patterns[key * 1024 + c]))
                same = same && (o[c] == want || (o[c].isNaN && want.isNaN))
            }
        }
        var random = ProbeNumbers(state: 0x5EED_16)
        func next() -> Float { random.next() }
        for (bfloat16, width) in [(false, 24), (true, 24), (false, 136), (true, 72), (false, 64)] {
            let rows = 8, count = 37, vStride = width + 8
            let p = (0..<(rows * count)).map { _ in abs(next()) }
            var values = (0..<(count * vStride)).map { _ in next() }
            values[5] = 3e-6; values[9] = -6e-8   // fp16 subnormals
            let (bits, widened) = halfBits(values, bfloat16: bfloat16)
            let start = (0..<(rows * width)).map { _ in next() }
            var half = start, wide = start
            k.accumulateProbabilityHalfValue(p: p, pStride: count, rows: rows, count: count, v: bits, vStride: vStride, width: width,
                                             bfloat16: bfloat16, o: &half, oStride: width)
            k.accumulateProbabilityValue(p: p, pStride: count, rows: rows, count: count, v: widened, vStride: vStride, width: width,
                                         o: &wide, oStride: width)
            same = same && half.map(\.bitPattern) == wide.map(\.bitPattern)
        }
        return same
    }

    /// Whether `level`'s key-row score tile (the exact decode path's Q K^T) over 16-bit keys
    /// gives the bits of its fp32 tile over the widened keys: random fp16 and bf16 keys (fp16
    /// subnormals among them) at depths with and without vector tails (for `sparge selftest`).
    public static func halfKeyScoreKernelMatchesWidenedKeys(level: CPUKernelLevel) throws -> Bool {
        let k = try probeKernels(level)
        var same = true
        var random = ProbeNumbers(state: 0x5EED_4B)
        func next() -> Float { random.next() }
        for (bfloat16, depth) in [(false, 128), (true, 128), (false, 72), (true, 20), (false, 3)] {
            let rows = 8, count = 37, kStride = depth + 5
            let q = (0..<(rows * depth)).map { _ in next() }
            var keys = (0..<(count * kStride)).map { _ in next() }
            keys[2] = 3e-6; keys[kStride + 1] = -6e-8   // fp16 subnormals
            let (bits, widened) = halfBits(keys, bfloat16: bfloat16)
            var half = [Float](repeating: .nan, count: rows * count), wide = half
            k.halfKeyRowScoreTile(q: q, qStride: depth, rows: rows, k: bits, kStride: kStride, count: count, depth: depth,
                                  bfloat16: bfloat16, out: &half, outStride: count)
            k.keyRowScoreTile(q: q, qStride: depth, rows: rows, k: widened, kStride: kStride, count: count, depth: depth,
                              out: &wide, outStride: count)
            same = same && half.map(\.bitPattern) == wide.map(\.bitPattern)
        }
        return same
    }

    /// Whether `level`'s channel-major score kernel (stage 1's compressed scores) gives the
    /// bits of its scalar twin, so that block maps do not depend on the CPU: rows across its
    /// 4-row tile, columns across its vectors and tails, several depths (for `sparge selftest`).
    public static func channelMajorScoresMatchScalarTwin(level: CPUKernelLevel) throws -> Bool {
        let k = try probeKernels(level)
        var same = true
        var random = ProbeNumbers(state: 0x5EED_C4)
        for (rows, columns, channels) in [(1, 2048, 128), (1, 77, 64), (4, 64, 64), (6, 45, 96), (9, 130, 3)] {
            let tableStride = columns + 3
            let q = (0..<(rows * channels)).map { _ in random.next() }
            let table = (0..<(channels * tableStride)).map { _ in random.next() }
            var fast = [Float](repeating: .nan, count: rows * columns), slow = fast
            k.channelMajorScores(q: q, qStride: channels, rows: rows, table: table, tableStride: tableStride, channels: channels,
                                 columns: columns, out: &fast, outStride: columns)
            SpargeSIMD.ScalarKernels.channelMajorScores(q: q, qStride: channels, rows: rows, table: table, tableStride: tableStride,
                                             channels: channels, columns: columns, out: &slow, outStride: columns)
            same = same && fast.map(\.bitPattern) == slow.map(\.bitPattern)
        }
        return same
    }

    /// Whether `level`'s 16-bit row conversions (a KV cache's appends and key preparation) give
    /// the bits of their scalar twins: narrowing of random floats, specials and ties, rows with
    /// tails, NaN stored as the quiet NaN of its sign (for `sparge selftest`).
    public static func halfRowConversionsMatchScalarTwins(level: CPUKernelLevel) throws -> Bool {
        let k = try probeKernels(level)
        var random = ProbeNumbers(state: 0x5EED_16)
        var values: [Float] = [0, -0, 65504, 65520, -65520, .infinity, -.infinity, .nan, -.nan, Float(bitPattern: 0x7F80_0001),
                               Float(bitPattern: 0xFFC0_1234), 5.96e-8, 2.98e-8, 1.0009766, 1.0004883, 3.3961776e38]
        for _ in 0..<4093 { values.append(Float(bitPattern: UInt32(truncatingIfNeeded: random.step()))) }
        var same = true
        for bfloat16 in [false, true] {
            var fast = [UInt16](repeating: 0, count: values.count), slow = fast
            k.narrowHalfRow(values, count: values.count, bfloat16: bfloat16, into: &fast)
            SpargeSIMD.ScalarKernels.narrowHalfRow(values, count: values.count, bfloat16: bfloat16, into: &slow)
            var wide = [Float](repeating: 0, count: values.count), plain = wide
            k.widenHalfRow(fast, count: fast.count, bfloat16: bfloat16, into: &wide)
            SpargeSIMD.ScalarKernels.widenHalfRow(fast, count: fast.count, bfloat16: bfloat16, into: &plain)
            same = same && fast == slow && wide.indices.allSatisfy { wide[$0].bitPattern == plain[$0].bitPattern || wide[$0].isNaN && plain[$0].isNaN }
        }
        return same
    }

    /// Median over `repeats` runs of the seconds `iterations` calls of `body` take, after one
    /// warm-up call.
    private static func medianSeconds(iterations: Int, repeats: Int, _ body: () -> Void) -> Double {
        body()
        let clock = ContinuousClock()
        var samples: [Double] = []
        for _ in 0..<Swift.max(1, repeats) {
            let start = clock.now
            for _ in 0..<iterations { body() }
            samples.append((clock.now - start).seconds)
        }
        return samples.sorted()[samples.count / 2]
    }

    private static func probeKernels(_ level: CPUKernelLevel) throws -> any TileKernels.Type {
        guard let k = kernels(for: level) else {
            throw SpargeError.unsupportedKernelLevel(requested: level.rawValue, supported: supportedLevels.map(\.rawValue),
                                                     source: "the throughput probe")
        }
        return k
    }

    /// `set`'s INT8 score tile (scale 0.37) of int8 rows `q8` (`rows x d`) against int8 keys
    /// `k8` (`columns x d`), each packed in that set's layout.
    static func packedScoreTile(_ set: any TileKernels.Type, q8: [Int8], k8: [Int8], rows: Int, columns: Int, d: Int,
                                terms: [Float]?, out: inout [Float]) {
        let pairs = pairCount(d)
        var qp = [Int32](repeating: 0, count: rows * pairs), kp = [Int16](repeating: 0, count: (pairs + 1) * columns * 2)
        set.packScoreQueries(q8, rows: rows, d: d, rowStride: pairs, rowsPad: rows, into: &qp)
        set.packScoreKeys(k8, rows: columns, d: d, stride: d, columns: columns, into: &kp)
        set.int8ScoreTile(q: qp, qStride: pairs, rows: rows, k: kp, columns: columns, pairs: pairs, scale: 0.37, terms: terms,
                          out: &out, outStride: columns)
    }
}

/// The probes' random numbers: a 64-bit linear congruential generator, so that every run on
/// every machine draws the same tiles.
private struct ProbeNumbers {
    var state: UInt64

    mutating func step() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state
    }

    /// An integer in `range`.
    mutating func next(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int((step() >> 33) % UInt64(range.count)) }

    /// A float in [-1024, 1024) with 21 fraction bits.
    mutating func next() -> Float { Float(Int64(bitPattern: step()) >> 40) * 0x1p-21 }
}

/// `values` rounded to fp16 (bf16 with `bfloat16`) bits by Swift's conversion, and those bits
/// widened back by Swift's conversions: the probes' reference for the 16-bit tiles.
private func halfBits(_ values: [Float], bfloat16: Bool) -> (bits: [UInt16], widened: [Float]) {
    let bits = values.map { bfloat16 ? BFloat16($0).bitPattern : Float16($0).bitPattern }
    return (bits, bits.map { bfloat16 ? BFloat16(bitPattern: $0).float : Float(Float16(bitPattern: $0)) })
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
