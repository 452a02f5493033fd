import Foundation
import SpargeAttn

/// `sparge selftest`: checks this machine's CPU kernel levels on randomized shapes against
/// float64 attention, and the levels against each other (identical block maps and INT8
/// tensors). Meant for a new machine or an emulator (`qemu-x86_64 -cpu Nehalem sparge selftest`):
/// it proves that the level chosen at run time is the right one and computes correctly.
struct SelfTestCommand {
    static let usage = """
        Usage: sparge selftest [--level LEVEL] [--expect-level LEVEL]

        Runs dense and sparse attention on small randomized shapes (ragged lengths, a query
        shorter than a block, D from 1 to 256, causal, grouped-query, Nq != Nk) at every CPU
        kernel level this build and processor support, compares each output with float64
        attention, and compares the levels' block maps and INT8 tensors (they must be
        identical) and sparse outputs (relative L2 <= 1e-5: only fp32 rounding may differ).
        Prints one line per case; exit 0 when all pass, 1 otherwise.

          --level LEVEL         test only this level (baseline, avx2 or avx512)
          --expect-level LEVEL  also fail unless the best level of this machine is LEVEL
        """

    var levels = SpargeCPU.supportedLevels
    var expected: CPUKernelLevel?

    init?(arguments: [String]) throws {
        guard let a = try Arguments.parse(arguments, flags: [], options: ["level", "expect-level"],
                                          usage: Self.usage) else { return nil }
        func level(_ name: String) throws -> CPUKernelLevel {
            guard let l = CPUKernelLevel(rawValue: name) else {
                throw UsageError("'\(name)' is not a CPU kernel level; use baseline, avx2 or avx512")
            }
            return l
        }
        if let l = a.string("level") { levels = [try level(l)] }
        if let e = a.string("expect-level") { expected = try level(e) }
    }

    /// (Nq, Nk, D, heads, kvHeads, causal).
    static let cases: [(Int, Int, Int, Int, Int, Bool)] = [
        (1, 1, 1, 1, 1, false), (5, 70, 3, 2, 1, true), (200, 200, 64, 4, 2, true), (130, 77, 80, 2, 2, false),
        (300, 300, 128, 2, 1, true), (70, 257, 256, 1, 1, false), (129, 600, 24, 3, 3, true),
    ]

    func execute() throws -> Bool {
        print("sparge selftest: \(BuildInfo.detail)")
        var ok = true
        if let expected, expected != SpargeCPU.bestLevel {
            print("FAIL best level is \(SpargeCPU.bestLevel.rawValue), expected \(expected.rawValue)")
            ok = false
        }
        for level in levels {
            let same = try SpargeCPU.integerKernelsMatchScalarTwins(level: level)
            ok = ok && same
            print("\(same ? "ok  " : "FAIL") \(level.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)) integer tile kernels (INT8 scores, fixed-point P.V) against their scalar twins: "
                  + (same ? "same bits" : "DIFFERENT bits"))
        }
        for level in levels {
            let same = try SpargeCPU.halfValueKernelMatchesWidenedValues(level: level)
            ok = ok && same
            print("\(same ? "ok  " : "FAIL") \(level.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)) fp16 / bf16 P.V tile (16-bit KV caches) against its fp32 tile on the widened values: "
                  + (same ? "same bits" : "DIFFERENT bits"))
        }
        for level in levels {
            let same = try SpargeCPU.halfKeyScoreKernelMatchesWidenedKeys(level: level)
            ok = ok && same
            print("\(same ? "ok  " : "FAIL") \(level.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)) fp16 / bf16 key-row score tile (exact decoding of 16-bit KV caches) against its fp32 tile on the widened keys: "
                  + (same ? "same bits" : "DIFFERENT bits"))
        }
        for level in levels {
            let same = try SpargeCPU.channelMajorScoresMatchScalarTwin(level: level)
            ok = ok && same
            print("\(same ? "ok  " : "FAIL") \(level.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)) stage 1's compressed-score kernel against its scalar twin: "
                  + (same ? "same bits" : "DIFFERENT bits"))
        }
        for level in levels {
            let same = try SpargeCPU.halfRowConversionsMatchScalarTwins(level: level)
            ok = ok && same
            print("\(same ? "ok  " : "FAIL") \(level.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)) fp16 / bf16 row conversions (16-bit KV caches' appends) against their scalar twins: "
                  + (same ? "same bits" : "DIFFERENT bits"))
        }
        for (index, c) in Self.cases.enumerated() {
            let shape = AttentionShape(batch: 1, heads: c.3, kvHeads: c.4, queryLength: c.0, keyLength: c.1, headDim: c.2)
            var state = UInt64(1000 + index)
            func gaussian() -> Float {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                let u = max(Double(state >> 11) / Double(1 << 53), 1e-300)
                state = state &* 6364136223846793005 &+ 1442695040888963407
                let v = Double(state >> 11) / Double(1 << 53)
                return Float((-2 * log(u)).squareRoot() * cos(2 * Double.pi * v))
            }
            let q = (0..<shape.queryElements).map { _ in 2 * gaussian() }, k = (0..<shape.keyElements).map { _ in 2 * gaussian() }
            let v = (0..<shape.keyElements).map { _ in gaussian() }
            var p = SpargeParameters.sage2CDF
            p.causal = c.5
            let exact = try Float64Reference.attention(q: q, k: k, v: v, shape: shape, causal: c.5)
            var first: SparseAttentionResult?
            var firstOutput: [Float]?
            for level in levels {
                let (dense, sparse) = try SpargeCPU.withLevel(level) {
                    (try SpargeAttention.dense(q: q, k: k, v: v, shape: shape, causal: c.5),
                     try SpargeAttention.sparse(q: q, k: k, v: v, shape: shape, parameters: p, captureQuantized: true))
                }
                let masked = try Float64Reference.attention(q: q, k: k, v: v, shape: shape, causal: c.5, blockMap: sparse.result.blockMap,
                                                        blockQ: p.blockQ, blockK: p.blockK)
                let denseError = try Accuracy(dense, reference: exact).relativeL2
                let sparseError = try Accuracy(sparse.output, reference: masked).relativeL2
                var pass = denseError < 2e-6 && sparseError < 0.06
                var note = ""
                if let first, let firstOutput {
                    let same = first.blockMap == sparse.result.blockMap && first.quantized == sparse.result.quantized
                    if !same { note = "  block map or INT8 tensors differ from \(levels[0].rawValue)" }
                    // Same block map and INT8 sums: the levels differ only in fp32 rounding
                    // (fused multiply-adds, lane counts), so a wrong INT8 or P.V tile shows here.
                    let drift = try Accuracy(sparse.output, reference: firstOutput).relativeL2
                    if drift > 1e-5 { note += String(format: "  sparse output differs from %@ (rel L2 %.1e)", levels[0].rawValue, drift) }
                    pass = pass && same && drift <= 1e-5
                }
                first = first ?? sparse.result
                firstOutput = firstOutput ?? sparse.output
                ok = ok && pass
                print(String(format: "%@ %-8@ %@  dense rel L2 %.2e  sparse rel L2 %.2e (vs float64 on its block map)%@",
                             pass ? "ok  " : "FAIL", level.rawValue, shape.description, denseError, sparseError, note))
            }
        }
        print(ok ? "selftest passed" : "selftest FAILED")
        return ok
    }
}
