#if CUDA
import Testing
import SpargeAttn
@testable import SpargeCUDA

/// Which Hopper program a plan's thresholds and a call's masks select: the specialized
/// programs leave code out, so choosing one where that code is needed would be a wrong result.
@Suite struct HopperProgramChoiceTests {
    @Test func filterCodeFollowsTheThresholds() {
        typealias F = Kernels.FilterCode
        let inf = Float.infinity
        #expect(F(lambdas: [inf, inf], countsAboveNoop: true) == .none)
        #expect(F(lambdas: [50, inf], countsAboveNoop: true) == .countOnly)
        #expect(F(lambdas: [50, 41], countsAboveNoop: true) == .countOnly)
        // At or below 40 a skip can change the output: the vote is needed.
        #expect(F(lambdas: [50, 40], countsAboveNoop: true) == .full)
        #expect(F(lambdas: [12, inf], countsAboveNoop: true) == .full)
        #expect(F(lambdas: [0], countsAboveNoop: true) == .full)
        // A kernel built to vote at every finite lambda (COUNT_FILTER=0) never gets the count alone.
        #expect(F(lambdas: [50], countsAboveNoop: false) == .full)
        #expect(F(lambdas: [inf], countsAboveNoop: false) == .none)
        #expect(F.none.options == ["-DFILTER=0"] && F.countOnly.options == ["-DFILTER=2"] && F.full.options.isEmpty)
    }

    @Test func maskedTilesFollowTheCall() {
        let shape = AttentionShape(batch: 1, heads: 2, queryLength: 256, keyLength: 256, headDim: 64)
        var p = SpargeParameters.recommended
        p.blockQ = 128; p.blockK = 64
        #expect(!SpargeCUDAPlan.hasMaskedTiles(shape: shape, parameters: p, padded: false))
        #expect(SpargeCUDAPlan.hasMaskedTiles(shape: shape, parameters: p, padded: true))
        let ragged = AttentionShape(batch: 1, heads: 2, queryLength: 256, keyLength: 250, headDim: 64)
        #expect(SpargeCUDAPlan.hasMaskedTiles(shape: ragged, parameters: p, padded: false))
        p.causal = true
        #expect(SpargeCUDAPlan.hasMaskedTiles(shape: shape, parameters: p, padded: false))
        // Block-level causal masking (the authors' kernels) masks whole blocks through the map.
        p.gpuReproduction.causalMasking = .blockOnly
        #expect(!SpargeCUDAPlan.hasMaskedTiles(shape: shape, parameters: p, padded: false))
    }
}
#endif
