import Dispatch

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
        let qp = [Int32](repeating: 0x0003_0002, count: rows * pairs), kp = [Int16](repeating: 3, count: pairs * cols * 2)
        func time(_ body: () -> Void) -> Double {
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
        let fp = time { k.floatScoreTile(q: q, qStride: d, rows: rows, kT: kT, columns: cols, depth: d, out: &s, outStride: cols) }
        let i8 = time { k.int8ScoreTile(q: qp, qStride: pairs, rows: rows, k: kp, columns: cols, pairs: pairs, scale: 1, terms: nil, out: &s, outStride: cols) }
        let ops = Double(2 * rows * cols * d * iterations)
        return (ops / fp / 1e9, ops / i8 / 1e9)
    }

    private static func probeKernels(_ level: CPUKernelLevel) throws -> any TileKernels.Type {
        guard let k = kernels(for: level) else {
            throw SpargeError.unsupportedKernelLevel(requested: level.rawValue, supported: supportedLevels.map(\.rawValue),
                                                     source: "the throughput probe")
        }
        return k
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
