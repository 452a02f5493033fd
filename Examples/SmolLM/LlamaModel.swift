import Foundation
import SpargeAttn
import SpargeGGUF

/// The Llama decoder (SmolLM2): RMSNorm, RoPE, grouped-query attention through SpargeAttn,
/// SwiGLU, tied embeddings. Activations are row-major `[tokens, features]`.
final class LlamaModel: Sendable {
    let config: LlamaConfig
    let weights: LlamaWeights
    let threads: Int

    init(gguf: GGUFFile, threads: Int) throws {
        config = try LlamaConfig(gguf: gguf)
        weights = try LlamaWeights(gguf: gguf, config: config) { _ in }
        self.threads = threads
    }

    /// What one prefill reports besides its hidden states.
    struct PrefillReport {
        var timings = PhaseTimings()
        /// Per layer: the fraction of causally allowed blocks computed (1 for exact attention).
        var density: [Double] = []
    }

    /// Runs the decoder over `tokens` and returns the final-normed hidden states `[N, hidden]`.
    /// `caches`, when given (one per layer), receive every layer's keys and values.
    /// `onQKV(layer, qkv)` sees each layer's fused, rotated Q/K/V rows `[N, H + 2 Hkv, D]`.
    func prefill(_ tokens: [Int], attention mode: AttentionMode, caches: [SpargeKVCache]? = nil,
                 report: inout PrefillReport, onQKV: ((Int, UnsafeBufferPointer<Float>) throws -> Void)? = nil) throws -> [Float] {
        let c = config, n = tokens.count
        let hd = c.hidden, width = c.qkvWidth
        for t in tokens where !(0..<c.vocab).contains(t) {
            throw ModelError.usage("token id \(t) is outside the vocabulary (\(c.vocab))")
        }
        var x = [Float](repeating: 0, count: n * hd)
        var h = [Float](repeating: 0, count: n * hd)
        var qkv = [Float](repeating: 0, count: n * width)
        var att = [Float](repeating: 0, count: n * hd)
        var gu = [Float](repeating: 0, count: n * 2 * c.ffn)
        var act = [Float](repeating: 0, count: n * c.ffn)
        report.timings.measure(.rest) {
            for (i, t) in tokens.enumerated() {
                for j in 0..<hd { x[i * hd + j] = weights.embedding[t * hd + j] }
            }
        }
        let rope = RotaryTable(positions: 0..<n, headDim: c.headDim, base: c.ropeBase)
        let shape = AttentionShape(heads: c.heads, kvHeads: c.kvHeads, queryLength: n, headDim: c.headDim)
        let fused = TensorLayout(batchStride: n * width, headStride: c.headDim, tokenStride: width)
        let kOffset = c.heads * c.headDim, vOffset = (c.heads + c.kvHeads) * c.headDim

        for l in 0..<c.layers {
            let w = weights.layers[l]
            report.timings.measure(.rest) { rmsNorm(x, w.attentionNorm, into: &h, rows: n) }
            report.timings.measure(.projections) { project(h, ld: hd, n: n, w.qkv, into: &qkv, ld: width, accumulate: false) }
            report.timings.measure(.rest) { rope.apply(&qkv, rows: n, rowWidth: width, heads: c.heads + c.kvHeads, threads: threads) }
            if let onQKV { try qkv.withUnsafeBufferPointer { try onQKV(l, $0) } }
            let parameters = try mode.parameters(layer: l, heads: c.heads)
            try report.timings.measure(.attention) {
                try qkv.withUnsafeBufferPointer { f in
                    try att.withUnsafeMutableBufferPointer { o in
                        let q = AttentionInput(UnsafeBufferPointer(rebasing: f[0...]), layout: fused)
                        let k = AttentionInput(UnsafeBufferPointer(rebasing: f[kOffset...]), layout: fused)
                        let v = AttentionInput(UnsafeBufferPointer(rebasing: f[vOffset...]), layout: fused)
                        let out = AttentionOutput(o, layout: .nhd(heads: c.heads, tokens: n, headDim: c.headDim))
                        if let parameters {
                            let plan = try SpargePlan(shape: shape, parameters: parameters, threads: threads)
                            let summary = try plan.run(q: q, k: k, v: v, output: out, workspace: plan.makeWorkspace())
                            report.density.append(summary.statistics.density)
                        } else {
                            try SpargeAttention.dense(q: q, k: k, v: v, output: out, shape: shape, causal: true, threads: threads)
                            report.density.append(1)
                        }
                        if let caches { try caches[l].append(k: k, v: v, tokens: n) }
                    }
                }
            }
            report.timings.measure(.projections) { project(att, ld: hd, n: n, w.output, into: &x, ld: hd, accumulate: true) }
            report.timings.measure(.rest) { rmsNorm(x, w.ffnNorm, into: &h, rows: n) }
            report.timings.measure(.projections) { project(h, ld: hd, n: n, w.gateUp, into: &gu, ld: 2 * c.ffn, accumulate: false) }
            report.timings.measure(.rest) { swiGLU(gu, into: &act, rows: n) }
            report.timings.measure(.projections) { project(act, ld: c.ffn, n: n, w.down, into: &x, ld: hd, accumulate: true) }
            if n >= 256 {
                progress(String(format: "  layer %d/%d: %.1f s so far, attention density %.3f", l + 1, c.layers,
                                report.timings.total, report.density.last ?? 1))
            }
        }
        report.timings.measure(.rest) { rmsNorm(x, weights.outputNorm, into: &h, rows: n) }
        return h
    }

    /// One decoding step at `position` for token `token`, attending through `caches` (which
    /// already hold `position` tokens). Returns the final-normed hidden state.
    func decode(_ token: Int, position: Int, caches: [SpargeKVCache], exact: Bool, timings: inout PhaseTimings) throws -> [Float] {
        let c = config, hd = c.hidden, width = c.qkvWidth
        guard (0..<c.vocab).contains(token) else { throw ModelError.usage("token id \(token) is outside the vocabulary") }
        var x = Array(weights.embedding[(token * hd)..<((token + 1) * hd)])
        var h = [Float](repeating: 0, count: hd)
        var qkv = [Float](repeating: 0, count: width)
        var att = [Float](repeating: 0, count: hd)
        var gu = [Float](repeating: 0, count: 2 * c.ffn)
        var act = [Float](repeating: 0, count: c.ffn)
        let rope = RotaryTable(positions: position..<(position + 1), headDim: c.headDim, base: c.ropeBase)
        let layout = TensorLayout(batchStride: width, headStride: c.headDim, tokenStride: width)
        let kOffset = c.heads * c.headDim, vOffset = (c.heads + c.kvHeads) * c.headDim
        for l in 0..<c.layers {
            let w = weights.layers[l]
            timings.measure(.rest) { rmsNorm(x, w.attentionNorm, into: &h, rows: 1) }
            timings.measure(.projections) { project(h, ld: hd, n: 1, w.qkv, into: &qkv, ld: width, accumulate: false) }
            timings.measure(.rest) { rope.apply(&qkv, rows: 1, rowWidth: width, heads: c.heads + c.kvHeads, threads: 1) }
            try timings.measure(.attention) {
                try qkv.withUnsafeBufferPointer { f in
                    try att.withUnsafeMutableBufferPointer { o in
                        try caches[l].append(k: AttentionInput(UnsafeBufferPointer(rebasing: f[kOffset...]), layout: layout),
                                             v: AttentionInput(UnsafeBufferPointer(rebasing: f[vOffset...]), layout: layout), tokens: 1)
                        let q = AttentionInput(UnsafeBufferPointer(rebasing: f[0...]), layout: layout)
                        if exact {
                            try caches[l].attendExact(q: q, output: AttentionOutput(o), queries: 1)
                        } else {
                            _ = try caches[l].attend(q: q, output: AttentionOutput(o), queries: 1)
                        }
                    }
                }
            }
            timings.measure(.projections) { project(att, ld: hd, n: 1, w.output, into: &x, ld: hd, accumulate: true) }
            timings.measure(.rest) { rmsNorm(x, w.ffnNorm, into: &h, rows: 1) }
            timings.measure(.projections) { project(h, ld: hd, n: 1, w.gateUp, into: &gu, ld: 2 * c.ffn, accumulate: false) }
            timings.measure(.rest) { swiGLU(gu, into: &act, rows: 1) }
            timings.measure(.projections) { project(act, ld: c.ffn, n: 1, w.down, into: &x, ld: hd, accumulate: true) }
        }
        timings.measure(.rest) { rmsNorm(x, weights.outputNorm, into: &h, rows: 1) }
        return h
    }

    /// Logits of rows `rows` of final hidden states `h` into `out` (`rows.count x vocab`).
    func logits(_ h: [Float], rows: Range<Int>, into out: inout [Float]) {
        h.withUnsafeBufferPointer { hp in
            out.withUnsafeMutableBufferPointer { op in
                MatrixKernel.multiply(hp.baseAddress! + rows.lowerBound * config.hidden, ldx: config.hidden, n: rows.count,
                                      weights.lmHead, into: op.baseAddress!, ldy: config.vocab, accumulate: false, threads: threads)
            }
        }
    }

    // MARK: Elementwise steps

    private func project(_ x: [Float], ld: Int, n: Int, _ w: PackedMatrix, into y: inout [Float], ld ldy: Int, accumulate: Bool) {
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                MatrixKernel.multiply(xp.baseAddress!, ldx: ld, n: n, w, into: yp.baseAddress!, ldy: ldy,
                                      accumulate: accumulate, threads: threads)
            }
        }
    }

    private func rmsNorm(_ x: [Float], _ weight: [Float], into y: inout [Float], rows: Int) {
        let d = config.hidden, eps = config.rmsEpsilon
        x.withUnsafeBufferPointer { xp in
            weight.withUnsafeBufferPointer { wp in
                y.withUnsafeMutableBufferPointer { yp in
                    let out = SharedPointer(yp.baseAddress!)
                    let chunk = 64
                    parallelFor(items: (rows + chunk - 1) / chunk, threads: threads) { item in
                        for r in (item * chunk)..<min(rows, (item + 1) * chunk) {
                            let row = xp.baseAddress! + r * d
                            var sum: Float = 0
                            for j in 0..<d { sum += row[j] * row[j] }
                            let scale = 1 / (sum / Float(d) + eps).squareRoot()
                            for j in 0..<d { out.base[r * d + j] = row[j] * scale * wp[j] }
                        }
                    }
                }
            }
        }
    }

    /// `act = silu(gate) * up` for rows of `[gate | up]` (SpargeSIMD's `siluGate` of the
    /// level the library runs).
    private func swiGLU(_ gu: [Float], into act: inout [Float], rows: Int) {
        let f = config.ffn
        let kernel = MatrixKernel.modelKernels()
        gu.withUnsafeBufferPointer { g in
            act.withUnsafeMutableBufferPointer { a in
                let out = SharedPointer(a.baseAddress!)
                let chunk = 64
                parallelFor(items: (rows + chunk - 1) / chunk, threads: threads) { item in
                    for r in (item * chunk)..<min(rows, (item + 1) * chunk) {
                        let gate = g.baseAddress! + r * 2 * f
                        kernel.siluGate(gate, gate + f, count: f, into: out.base + r * f)
                    }
                }
            }
        }
    }
}
