import Foundation
import SpargeAttn
import SpargeFormats
import SpargeWorkloads

// `sparge bench --masks`: what an AttentionMask costs, and what it saves. Each pattern is timed
// dense and sparse, interleaved with the same call under the built-in causal rule, so the
// ratios hold on a loaded machine.

extension BenchCommand {
    /// The mask rows: B=1 H=8 N=4096 D=64, medium workload, one-shot calls into a reused output.
    func maskRows(threads: Int) throws -> JSONValue {
        let t = try Self.mediumInput(heads: 8, tokens: 4096, headDim: 64, threads: threads)
        let n = t.shape.queryLength
        say("masks: \(t.shape), medium input; build \(BuildInfo.detail); \(threads) threads; machine: \(ResidentMemory.cpuModel())")
        say("median of \(repeats) calls after a warm-up, each beside the same call with the built-in causal rule\n")
        let patterns: [(name: String, mask: AttentionMask)] = [
            ("causal as a mask", try AttentionMask(queryLength: n, keyLength: n) { _, i, j in j <= i }),
            ("prefix-LM 1024", try AttentionMask(queryLength: n, keyLength: n) { _, i, j in j <= i || j < 1024 }),
            ("4 documents", try AttentionMask(queryLength: n, keyLength: n) { _, i, j in j <= i && i / 1024 == j / 1024 }),
        ]
        let header: [(String, Int)] = [("pattern", -18), ("path", -6), ("mask ms", 8), ("causal ms", 9), ("ratio", 6), ("density", 7), ("cosine", 7)]
        say(header.map { DemoCommand.pad($0.0, $0.1) }.joined(separator: " "))
        say(header.map { String(repeating: "-", count: abs($0.1)) }.joined(separator: " "))
        var rows: [JSONValue] = []
        var causal = SpargeParameters.recommended
        causal.causal = true
        var out = [Float](repeating: 0, count: t.shape.queryElements), exact = out
        for (name, mask) in patterns {
            for sparse in [false, true] {
                var maskTimes: [Double] = [], ruleTimes: [Double] = []
                var density = 1.0
                for step in 0...repeats {
                    let m = try Timing.seconds {
                        try call(t, mask: mask, sparse: sparse, into: &out, threads: threads) { density = $0 }
                    }
                    let r = try Timing.seconds {
                        if sparse { _ = try Self.sparse(t, causal, threads: threads, into: &exact) }
                        else { try Self.dense(t, causal: true, threads: threads, into: &exact) }
                    }
                    if step > 0 { maskTimes.append(m); ruleTimes.append(r) }
                }
                // The accuracy of this row's output against exact attention under the same mask.
                try call(t, mask: mask, sparse: false, into: &exact, threads: threads) { _ in }
                let cosine = sparse ? try Accuracy(out, reference: exact).cosine : 1
                let (ms, rule) = (Timing.median(maskTimes) * 1e3, Timing.median(ruleTimes) * 1e3)
                let row: [(String, Int)] = [(name, -18), (sparse ? "sparse" : "dense", -6), (String(format: "%.1f", ms), 8),
                                            (String(format: "%.1f", rule), 9), (String(format: "%.2f", ms / rule), 6),
                                            (String(format: "%.3f", density), 7), (String(format: "%.4f", cosine), 7)]
                say(row.map { DemoCommand.pad($0.0, $0.1) }.joined(separator: " "))
                rows.append(.object([("pattern", .string(name)), ("path", .string(sparse ? "sparse" : "dense")),
                                     ("mask_seconds", .finite(ms / 1e3)), ("causal_seconds", .finite(rule / 1e3)),
                                     ("density", .finite(density)), ("cosine", .finite(cosine))]))
            }
        }
        say("""

            mask ms: the call with the AttentionMask (not causal otherwise); causal ms: the same path with causal = true
            and no mask; sparse: top-k 0.5 (recommended parameters); density: selected over allowed blocks;
            cosine: sparse against exact attention under the same mask.
            """)
        return .array(rows)
    }

    /// One call with `mask`, dense or sparse (recommended parameters, not causal), into `out`.
    private func call(_ t: VideoLikeWorkload.Tensors, mask: AttentionMask, sparse: Bool, into out: inout [Float], threads: Int,
                      density: (Double) -> Void) throws {
        try t.q.withUnsafeBufferPointer { q in try t.k.withUnsafeBufferPointer { k in try t.v.withUnsafeBufferPointer { v in
            try out.withUnsafeMutableBufferPointer { o in
                if sparse {
                    let r = try SpargeAttention.sparse(q: q, k: k, v: v, output: o, shape: t.shape, parameters: .recommended,
                                                       threads: threads, attentionMask: mask)
                    density(r.statistics.density)
                } else {
                    try SpargeAttention.dense(q: q, k: k, v: v, output: o, shape: t.shape, threads: threads, attentionMask: mask)
                }
            }
        } } }
    }
}
