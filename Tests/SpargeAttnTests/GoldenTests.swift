import Foundation
import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// The official GPU outputs, reproduced: the compact set in Tests/Golden always, the full
/// set too when it is present (see `Golden`).
@Suite(.serialized)
struct GoldenTests {
    @Test func compactSetIsComplete() throws {
        #expect(Golden.caseNames(in: Golden.compactFolder) == Golden.compactCaseNames,
                "Tests/Golden must hold the compact cases (Scripts/make_compact_golden.py writes them)")
    }

    /// Stage-1 masks with the fp16 rounding of the GPU code: >= 99.9% agreement, ties at the
    /// row's cut-off probability excluded (any order among tied blocks is a valid top-k).
    @Test(arguments: goldenCaseNames)
    func masksMatchOfficial(name: String) throws {
        let c = try Golden.load(name)
        #expect(!c.masks.isEmpty)
        for (cfg, m) in c.masks.sorted(by: { $0.key < $1.key }) {
            var p = SpargeParameters()
            p.blockQ = m["BLKQ"] as! Int
            p.blockK = m["BLKK"] as! Int
            p.simThreshold = PerHead(Float(m["simthreshd1"] as! Double))
            if let tau = m["cdfthreshd"] as? Double { p.selection = .cdf(PerHead(Float(tau))) }
            if let topk = m["topk"] as? Double { p.selection = .topK(PerHead(Float(topk))) }
            p.attentionSink = m["attention_sink"] as? Bool ?? false
            p.causal = c.causal
            p.gpuReproduction.gpuRounding = true
            let result = try SpargeAttention.predictBlockMap(q: c.q, k: c.k, shape: c.shape, parameters: p,
                                                              captureProbabilities: true)
            let official = try c.file.tensor("mask." + cfg).uint8s()
            let resultMap = try #require(result.blockMap)
            let mine = resultMap.bits
            let probs = try #require(result.blockProbabilities)
            let nk = resultMap.keyBlocks
            #expect(official.count == mine.count, "\(name) \(cfg): mask sizes differ")
            // A disagreement is a tie when the row also disagrees the other way on a block of
            // the same probability: the two picks were exchanged among equals.
            var counted = 0, agree = 0, ties = 0
            for row in 0..<(mine.count / nk) {
                let o = row * nk
                let onlyOfficial = Set((0..<nk).filter { official[o + $0] != 0 && mine[o + $0] == 0 }.map { probs[o + $0] })
                let onlyMine = Set((0..<nk).filter { official[o + $0] == 0 && mine[o + $0] != 0 }.map { probs[o + $0] })
                for j in 0..<nk {
                    let same = (official[o + j] != 0) == (mine[o + j] != 0)
                    if !same && onlyOfficial.contains(probs[o + j]) && onlyMine.contains(probs[o + j]) { ties += 1; continue }
                    counted += 1
                    if same { agree += 1 }
                }
            }
            let agreement = Double(agree) / Double(counted)
            #expect(agreement >= 0.999, "\(name) mask.\(cfg): agreement \(agreement) (\(counted - agree) blocks differ, \(ties) ties)")
            if let density = m["density"] as? Double, ties == 0 {
                #expect(abs(resultMap.density - density) < 0.002, "\(name) \(cfg): density \(resultMap.density) vs \(density)")
            }
        }
    }

    /// INT8 tensors of the CUDA path (both block shapes) and of the Triton path.
    @Test(arguments: goldenCaseNames)
    func int8TensorsMatchOfficial(name: String) throws {
        let c = try Golden.load(name)
        for (prefix, bq, bk, variant) in [("quant_b128x64", 128, 64, QuantizationVariant.cuda),
                                          ("quant_b64x128", 64, 128, .cuda),
                                          ("quant_triton", 128, 64, .triton)] {
            var p = SpargeParameters()
            p.blockQ = bq
            p.blockK = bk
            p.gpuReproduction.quantization = variant
            p.gpuReproduction.gpuRounding = true
            p.causal = c.causal
            let r = try SpargeAttention.predictBlockMap(q: c.q, k: c.k, shape: c.shape, parameters: p, captureQuantized: true)
            let mine = try #require(r.quantized)
            for (tensor, values, scales, officialScaleName) in [
                ("q_int8", mine.qInt8, mine.qScale, "q_scale"), ("k_int8", mine.kInt8, mine.kScale, "k_scale"),
            ] {
                let official = try c.file.tensor("\(prefix).\(tensor)").int8s()
                #expect(official.count == values.count)
                var offByOne = 0, worse = 0
                for i in 0..<min(official.count, values.count) where official[i] != values[i] {
                    if abs(Int(official[i]) - Int(values[i])) == 1 { offByOne += 1 } else { worse += 1 }
                }
                #expect(worse == 0, "\(name) \(prefix).\(tensor): \(worse) elements differ by more than 1")
                #expect(Double(offByOne) <= 0.0005 * Double(official.count),
                        "\(name) \(prefix).\(tensor): \(offByOne) of \(official.count) elements differ by 1")
                let officialScales = try c.file.tensor("\(prefix).\(officialScaleName)").floats()
                #expect(officialScales.count == scales.count)
                for i in 0..<min(officialScales.count, scales.count) {
                    let rel = abs(Double(scales[i]) / Double(officialScales[i]) - 1)
                    #expect(rel <= 1e-6, "\(name) \(prefix).\(officialScaleName)[\(i)]: \(scales[i]) vs \(officialScales[i])")
                }
            }
        }
    }

    /// The Triton kernel's output, recomputed with its mask and quantization and stage 2 off.
    @Test(arguments: goldenCaseNames)
    func tritonOutputMatchesOfficial(name: String) throws {
        let c = try Golden.load(name)
        guard let official = try? c.file.tensor("triton.o").floats() else {
            #expect(c.shape.headDim == 32, "\(name): only the head-dim-32 case lacks triton.o")
            return
        }
        var p = SpargeParameters.triton
        p.gpuReproduction.gpuRounding = true
        p.gpuReproduction.tritonKeyPadding = true
        p.causal = c.causal
        let bits = try c.file.tensor("mask.triton").uint8s()
        let nq = blockCount(c.shape.queryLength, 128), nk = blockCount(c.shape.keyLength, 64)
        let map = try BlockMap(batch: c.shape.batch, heads: c.shape.heads, queryBlocks: nq, keyBlocks: nk, bits: bits)
        let (out, _) = try SpargeAttention.sparse(q: c.q, k: c.k, v: c.v, shape: c.shape, parameters: p, blockMap: map)
        // Rows that see no key (all their blocks in the future) differ by design (section 4).
        let s = c.shape
        func seesKey(_ row: Int) -> Bool {
            guard c.causal else { return true }
            let n = row % s.queryLength, bh = row / s.queryLength
            let b = bh / s.heads, h = bh % s.heads
            for j in 0..<nk where map[b, h, n / 128, j] && j * 64 <= n { return true }
            return false
        }
        let acc = try Accuracy(out, reference: official.map(Double.init), rowLength: s.headDim, includeRow: seesKey)
        #expect(acc.cosine >= 0.999, "\(name): cosine \(acc.cosine) against triton.o")
        #expect(acc.relativeL1 <= 0.01, "\(name): relative L1 \(acc.relativeL1) against triton.o")
        // The Triton preset (fp16 P.V, as the Triton kernel) reproduces it at least as closely.
        let (faithful, _) = try SpargeAttention.sparse(q: c.q, k: c.k, v: c.v, shape: c.shape,
                                                       parameters: { var t = SpargeParameters.preset(.triton); t.causal = c.causal; return t }(),
                                                       blockMap: map)
        let faithfulAcc = try Accuracy(faithful, reference: official.map(Double.init), rowLength: s.headDim, includeRow: seesKey)
        #expect(faithfulAcc.relativeL1 <= acc.relativeL1 * 1.05 + 1e-5,
                "\(name): fp16 preset rel L1 \(faithfulAcc.relativeL1) vs fp32 \(acc.relativeL1)")
    }
}
