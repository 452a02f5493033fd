import Testing
@testable import SpargeAttn
import SpargeTestSupport

/// The fast stage-1 selection (steps 3-7) against its plain twin `Stage1Reference.selectBlocks`.
struct SelectionReferenceTests {
    @Test func fastSelectionEqualsPlainTwinOnRandomInputs() throws {
        var rng = TestRNG(seed: 131)
        for trial in 0..<200 {
            let nq = rng.int(1...9), nk = rng.int(1...40), d = rng.int(1...24)
            let blockQ = [64, 128][rng.int(0...1)], blockK = [32, 64][rng.int(0...1)]
            let pooledQ = rng.gaussians(nq * d), pooledK = rng.gaussians(nk * d)
            // Self-similarities in [0, 1], some NaN (partial blocks), against theta in [0, 0.6].
            func sims(_ n: Int) -> [Float] { (0..<n).map { _ in rng.uniform() < 0.1 ? .nan : Float(rng.uniform()) } }
            let simQ = sims(nq), simK = sims(nk)
            let theta = Float(rng.uniform() * 0.6)
            let fraction = Float(rng.uniform() * 0.95 + 0.05)
            let selection: BlockSelection = rng.int(0...1) == 0 ? .cdf(PerHead(fraction)) : .topK(PerHead(fraction))
            let causal = rng.int(0...1) == 0, sink = rng.int(0...1) == 0, gpuRounding = rng.int(0...1) == 0
            let offset = rng.int(0...1) == 0 ? 0 : rng.int(0...(nk * blockK))
            let scale = Float(rng.uniform() * 2 + 0.1)
            // A sliding window (causal only) of 1 key to a few blocks, and a ragged last key block.
            let window = causal && rng.int(0...1) == 0 ? rng.int(1...(3 * max(blockQ, blockK))) : 0
            let keyLength = nk * blockK - rng.int(0...(blockK - 1))
            // Blocks an attention mask forbids entirely (in half the trials): 0, else mixed or allowed.
            let masks = rng.int(0...1) == 0
            let states: [UInt8] = (0..<(nq * nk)).map { _ in masks && rng.uniform() < 0.2 ? 0 : UInt8(rng.int(1...2)) }
            let stateBytes = UnsafeMutablePointer<UInt8>.allocate(capacity: states.count)
            stateBytes.initialize(from: states, count: states.count)
            defer { stateBytes.deallocate() }

            let plain = Stage1Reference.selectBlocks(
                pooledQ: pooledQ, selfSimilarityQ: simQ, pooledK: pooledK, selfSimilarityK: simK, headDim: d,
                blockQ: blockQ, blockK: blockK, scale: scale, theta: theta, selection: selection,
                causal: causal, causalOffset: offset, attentionSink: sink, gpuRounding: gpuRounding,
                slidingWindow: window > 0 ? window : nil, keyLength: keyLength, forbiddenBlocks: masks ? states.map { $0 == 0 } : nil)

            // Both fast forms: scalar compressed scores, and eight key blocks at a time from the
            // channel-major pooled keys (the pipeline's); their P_hat must agree bit for bit.
            var fast = [UInt8](repeating: 7, count: nq * nk), fastByLanes = fast
            var pHat = [Float](repeating: 0, count: nq * nk), pHatByLanes = pHat
            var probabilities = [Float](repeating: 0, count: compressedScoreRows * nk), keys = [UInt64](repeating: 0, count: selectionKeyScratch(keyBlocks: nk))
            // The channel-major scores on a level of its own each trial (each gives the scalar bits).
            let levels = SpargeCPU.supportedLevels, kernels = try #require(SpargeCPU.kernels(for: levels[trial % levels.count]))
            // The pipeline's layout, with a stride past the least (a cache's capacity) and the
            // lanes past nk holding garbage, which the scores must never use.
            let stride = (nk + 7) / 8 * 8 + 8 * (trial % 3)
            var channelMajor = [Float](repeating: .nan, count: d * stride)
            for j in 0..<nk { for c in 0..<d { channelMajor[c * stride + j] = pooledK[j * d + c] } }
            pooledQ.withUnsafeBufferPointer { pq in simQ.withUnsafeBufferPointer { sq in
                pooledK.withUnsafeBufferPointer { pk in simK.withUnsafeBufferPointer { sk in
                    let (value, isTopK): (Float, Bool) = {
                        switch selection { case .cdf(let t): return (t[0], false); case .topK(let t): return (t[0], true) }
                    }()
                    var inputs = SelectionInputs(
                        pooledQ: pq.baseAddress!, simQ: sq.baseAddress!, pooledK: pk.baseAddress!, simK: sk.baseAddress!,
                        queryBlocks: nq, keyBlocks: nk, d: d, blockQ: blockQ, blockK: blockK, scale: scale, theta: theta,
                        selection: value, isTopK: isTopK, causal: causal, causalOffset: offset, window: window,
                        attentionSink: sink, gpuRounding: gpuRounding, keyLength: keyLength)
                    if masks { inputs.pairBlocks = UnsafePointer(stateBytes) }
                    pHat.withUnsafeMutableBufferPointer { inputs.probabilitiesOut = $0.baseAddress!
                        selectBlocks(inputs, map: &fast, probabilities: &probabilities, keys: &keys)
                    }
                    pHatByLanes.withUnsafeMutableBufferPointer { inputs.probabilitiesOut = $0.baseAddress!
                        channelMajor.withUnsafeBufferPointer {
                            selectBlocks(inputs, map: &fastByLanes, probabilities: &probabilities, keys: &keys,
                                         channelMajor: ChannelMajorKeys(base: $0.baseAddress!, stride: stride, kernels: kernels))
                        }
                    }
                } }
            } }
            #expect(fast == plain, "trial \(trial): nq \(nq) nk \(nk) d \(d) \(selection) causal \(causal) offset \(offset) window \(window)")
            #expect(fastByLanes == plain, "trial \(trial), eight key blocks at a time: nq \(nq) nk \(nk) d \(d)")
            #expect(pHat.map(\.bitPattern) == pHatByLanes.map(\.bitPattern), "trial \(trial): P_hat bits differ between the two score loops")
        }
    }

    /// The top-k rule's radix selection against the walk it replaces: the order keys sorted, taken
    /// from the front, the count shrinking by `zerosBefore` once a probability-0 block is reached.
    /// Rows with many ties, zeros (+0 and -0), few and many blocks.
    @Test func topKSelectionTakesTheBlocksOfTheOrderedWalk() {
        var rng = TestRNG(seed: 4242)
        for trial in 0..<300 {
            let nk = [1, 2, 7, 63, 64, 300, 2048, 3001][trial % 8]
            let levels: [Float] = [0, -0, 1e-30, 0.001, 0.25, 0.5, 1]
            let p: [Float] = (0..<nk).map { _ in
                rng.uniform() < 0.5 ? levels[rng.int(0...(levels.count - 1))] : Float(rng.uniform())
            }
            let take = rng.int(1...(nk + 2)), zerosBefore = rng.int(0...1) == 0 ? 0 : rng.int(0...(2 * nk))
            var row = [UInt8](repeating: 9, count: nk), keys = [UInt64](repeating: 0, count: selectionKeyScratch(keyBlocks: nk))
            markMostProbable(p, count: nk, rule: .topK(count: take, zerosBefore: zerosBefore), keys: &keys, row: &row)
            let order = (0..<nk).sorted {
                (UInt32.max - p[$0].bitPattern, $0) < (UInt32.max - p[$1].bitPattern, $1)
            }
            var expected = [UInt8](repeating: 0, count: nk), taken = 0, zerosReached = false
            for block in order {
                if !zerosReached && p[block] == 0 { zerosReached = true }
                if taken >= (zerosReached ? take - zerosBefore : take) { break }
                expected[block] = 1
                taken += 1
            }
            #expect(row == expected, "trial \(trial): nk \(nk) take \(take) zerosBefore \(zerosBefore)")
        }
    }

    /// Stage 1 of a grouped call scores a kv group's heads together (query block by query block,
    /// four heads a kernel call); a call with each kv head repeated for its query heads scores
    /// each head alone (four query blocks a call). Same keys, same summaries: the maps must be
    /// the same, bit for bit, with and without a sliding window, decoding and prefilling, for
    /// group sizes that fill the 4-row tile, leave a remainder, or take it twice.
    @Test(arguments: [(2, 1, 1, 300), (6, 2, 1, 700), (8, 1, 3, 520), (3, 1, 200, 260), (12, 2, 140, 333)])
    func groupedSelectionEqualsRepeatedHeads(heads: Int, kvHeads: Int, queries: Int, keys: Int) throws {
        var rng = TestRNG(seed: UInt64(heads * 1000 + queries))
        let d = 40, group = heads / kvHeads
        let grouped = AttentionShape(batch: 2, heads: heads, kvHeads: kvHeads, queryLength: queries, keyLength: keys, headDim: d)
        let repeated = AttentionShape(batch: 2, heads: heads, kvHeads: heads, queryLength: queries, keyLength: keys, headDim: d)
        let q = rng.gaussians(grouped.queryElements, scale: 1.5), k = rng.gaussians(grouped.keyElements, scale: 1.5)
        let v = rng.gaussians(grouped.keyElements)
        // [B][Hkv][N][D] -> [B][H][N][D], each kv head once per query head of its group.
        var kRepeated: [Float] = [], vRepeated: [Float] = []
        for b in 0..<2 { for h in 0..<heads {
            let from = ((b * kvHeads + h / group) * keys) * d
            kRepeated += k[from..<(from + keys * d)]; vRepeated += v[from..<(from + keys * d)]
        } }
        for window in [nil, 150] {
            var p = SpargeParameters.recommended
            p.causal = true
            p.slidingWindow = window
            p.selection = .topK(PerHead((0..<heads).map { Float($0 % 3 + 1) / 4 }))
            var out = [Float](repeating: 0, count: grouped.queryElements), outRepeated = out
            let a = try SpargeAttention.sparse(q: q, k: k, v: v, output: &out, shape: grouped, parameters: p)
            let b = try SpargeAttention.sparse(q: q, k: kRepeated, v: vRepeated, output: &outRepeated, shape: repeated, parameters: p)
            let mapA = try #require(a.blockMap), mapB = try #require(b.blockMap)
            #expect(mapA.bits == mapB.bits, "H \(heads) Hkv \(kvHeads) Nq \(queries) Nk \(keys) window \(String(describing: window))")
        }
    }

    /// `selectionKeepsEveryBlock` (the GPU's map without scores): when it holds, the plain twin's
    /// map is every block less the causal future, plus the sink, whatever the scores.
    @Test func keepingEveryBlockNeedsNoScores() {
        var rng = TestRNG(seed: 977)
        var held = 0
        for trial in 0..<200 {
            let nq = rng.int(1...9), nk = rng.int(1...40), d = rng.int(1...24)
            let blockQ = [64, 128][rng.int(0...1)], blockK = [32, 64][rng.int(0...1)]
            let fraction: Float = rng.int(0...1) == 0 ? 1 : Float(rng.uniform() * 0.2 + 0.8)
            var p = SpargeParameters.recommended
            p.selection = .topK(PerHead(fraction))
            let keepsAll = p.selectionKeepsEveryBlock(keyBlocks: nk, heads: 1)
            #expect(keepsAll == (max(1, Int(fraction * Float(nk))) >= nk), "trial \(trial): fraction \(fraction) nk \(nk)")
            guard keepsAll else { continue }
            held += 1
            func sims(_ n: Int) -> [Float] { (0..<n).map { _ in rng.uniform() < 0.1 ? .nan : Float(rng.uniform()) } }
            let causal = rng.int(0...1) == 0, sink = rng.int(0...1) == 0
            let offset = rng.int(0...1) == 0 ? 0 : rng.int(-(nq * blockQ)...(nk * blockK))
            let map = Stage1Reference.selectBlocks(
                pooledQ: rng.gaussians(nq * d), selfSimilarityQ: sims(nq), pooledK: rng.gaussians(nk * d), selfSimilarityK: sims(nk),
                headDim: d, blockQ: blockQ, blockK: blockK, scale: Float(rng.uniform() * 2 + 0.1), theta: Float(rng.uniform() * 0.6),
                selection: p.selection, causal: causal, causalOffset: offset, attentionSink: sink, gpuRounding: rng.int(0...1) == 0)
            let expected: [UInt8] = (0..<(nq * nk)).map { e in
                let i = e / nk, j = e % nk
                if sink && j == 0 { return 1 }
                return !causal || blockCausallyAllowed(i: i, j: j, blockQ: blockQ, blockK: blockK, offset: offset) ? 1 : 0
            }
            #expect(map == expected, "trial \(trial): nq \(nq) nk \(nk) causal \(causal) offset \(offset) sink \(sink)")
        }
        #expect(held > 50)
        var cdf = SpargeParameters.recommended
        cdf.selection = .cdf(1)
        #expect(!cdf.selectionKeepsEveryBlock(keyBlocks: 4, heads: 1))
        var perHead = SpargeParameters.recommended
        perHead.selection = .topK([1, 0.5])
        #expect(!perHead.selectionKeepsEveryBlock(keyBlocks: 4, heads: 2))
        perHead.selection = .topK([1, 1])
        #expect(perHead.selectionKeepsEveryBlock(keyBlocks: 4, heads: 2))
    }
}
