#if CUDA
import Foundation
import Testing
import SpargeAttn
@testable import SpargeCUDA

/// The GPU backend's per-row log-sum-exp (`lse:`) and key padding mask: argument checks that
/// hold on any machine (they come before the driver is opened), and agreement with the CPU
/// path where a GPU is present.
@Suite struct CUDALogSumExpTests {
    static let shape = AttentionShape(batch: 2, heads: 2, queryLength: 100, headDim: 64)

    /// Runs the `backend: .cuda()` call on zero inputs with an `lse` buffer of `lseCount`
    /// floats (none when nil) and `keyPadding`.
    static func callGPU(lseCount: Int?, keyPadding: KeyPaddingMask? = nil) throws {
        let s = shape
        let x = [Float](repeating: 0, count: s.queryElements)
        var out = x, lse = [Float](repeating: 0, count: lseCount ?? 0)
        try x.withUnsafeBufferPointer { x in try out.withUnsafeMutableBufferPointer { o in try lse.withUnsafeMutableBufferPointer { l in
            _ = try SpargeAttention.sparse(q: AttentionInput(x), k: AttentionInput(x), v: AttentionInput(x), output: AttentionOutput(o),
                                           shape: s, parameters: CUDATestSupport.fp16(), backend: .cuda(), lse: lseCount == nil ? nil : l, keyPadding: keyPadding)
        } } }
    }

    @Test func lseBufferTooSmallIsATypedError() {
        let needed = Self.shape.batch * Self.shape.heads * Self.shape.queryLength
        do {
            try Self.callGPU(lseCount: needed - 1)
            Issue.record("expected SpargeError.bufferTooSmall for a short lse buffer")
        } catch SpargeError.bufferTooSmall(let name, let expected, let actual) {
            #expect(name == "lse" && expected == needed && actual == needed - 1)
        } catch {
            Issue.record("expected SpargeError.bufferTooSmall, got \(error)")
        }
    }

    @Test func keyPaddingOfTheWrongSizeIsATypedError() throws {
        let wrongSize = try KeyPaddingMask(validLengths: [50], keyLength: 50)
        do {
            try Self.callGPU(lseCount: nil, keyPadding: wrongSize)
            Issue.record("expected SpargeError.invalidParameter for a 1 x 50 mask on a 2 x 100 call")
        } catch SpargeError.invalidParameter(let message) {
            #expect(message.contains("keyPadding"), "\(message)")
        } catch {
            Issue.record("expected SpargeError.invalidParameter, got \(error)")
        }
    }

    /// On a GPU: the LSE of both stage-2 kernels (and the FP8 one on Hopper) within 1e-3 of
    /// the CPU path's for fp16 inputs, with and without K smoothing, causal with Nq > Nk so
    /// that the first rows attend no key (-inf on both), without and with a key padding mask
    /// (fully and partly padded key blocks). Skipped where no driver loads.
    @Test func lseAgreesWithTheCPUPathOnAGPU() throws {
        guard let device = try CUDATestSupport.deviceOrSkip("GPU LSE agreement test") else { return }
        let shape = AttentionShape(batch: 2, heads: 4, kvHeads: 2, queryLength: 650, keyLength: 523, headDim: 64)
        let (q, k, v) = CUDATestSupport.randomHalfInputs(shape, keyOffset: 0.7)
        var sets: [(String, SpargeParameters)] = []
        for causal in [false, true] {
            for smooth in [false, true] {
                var p = CUDATestSupport.fp16()
                p.causal = causal
                p.smoothK = smooth
                sets.append(("causal \(causal) smoothK \(smooth)", p))
                if device.computeCapability.major == 9 {
                    p.gpuReproduction.pvNumerics = .fp8
                    sets.append(("causal \(causal) smoothK \(smooth) fp8", p))
                }
            }
        }
        var triton = SpargeParameters.preset(.triton)
        triton.causal = true
        sets.append(("triton preset causal", triton))
        let padding = try KeyPaddingMask(validLengths: [200, 523], keyLength: 523)
        var valid = [Bool](repeating: true, count: 2 * 523)
        for t in 0..<140 { valid[t] = false }
        for t in 400..<523 { valid[523 + t] = false }
        let leftRight = try KeyPaddingMask(batch: 2, keyLength: 523, valid: valid)
        let masks = [nil, padding, leftRight]
        for mask in masks {
            for (label, p) in sets {
                let r = try q.withUnsafeBufferPointer { q in try k.withUnsafeBufferPointer { k in try v.withUnsafeBufferPointer { v in
                    try CUDAAgreementCheck.compare(label: label, q: AttentionInput(q), k: AttentionInput(k), v: AttentionInput(v),
                                                   shape: shape, parameters: p, keyPadding: mask, device: device)
                } } }
                #expect(r.lseMaxAbsoluteError <= 1e-3, "\(label) padding \(mask != nil): \(r)")
                #expect(r.passed(), "\(label) padding \(mask != nil): \(r)")
            }
        }
    }

    /// The kernels' view of a mask: per-key bytes and per key block flags (bit 0 some padding,
    /// bit 1 all padding); nil when nothing is padded.
    @Test func keyPaddingBytesForTheKernels() throws {
        let shape = AttentionShape(batch: 2, heads: 1, queryLength: 8, keyLength: 10, headDim: 32)
        var valid = [Bool](repeating: true, count: 20)
        for t in 0..<4 { valid[t] = false }          // batch 0: block 0 (keys 0-3) all padding
        valid[10 + 9] = false                         // batch 1: the last, short block partly
        let mask = try KeyPaddingMask(batch: 2, keyLength: 10, valid: valid)
        let bytes = try #require(try SpargeCUDAPlan.keyPaddingBytes(mask, shape: shape, blockK: 4))
        #expect(bytes.valid == valid.map { $0 ? 1 : 0 })
        #expect(bytes.flags == [3, 0, 0, 0, 0, 1])
        let none = try KeyPaddingMask(validLengths: [10, 10], keyLength: 10)
        #expect(try SpargeCUDAPlan.keyPaddingBytes(none, shape: shape, blockK: 4) == nil)
        // A mask of another shape is a typed error.
        #expect(throws: SpargeError.self) { try SpargeCUDAPlan.keyPaddingBytes(mask, shape: AttentionShape(batch: 2, heads: 1, queryLength: 8, keyLength: 11, headDim: 32), blockK: 4) }
    }

    /// The comparison itself: -inf must meet -inf, NaN fails, finite rows give the largest gap.
    @Test func lseDifferenceRules() {
        #expect(CUDAAgreement.lseDifference([1, -.infinity, 3], [1.5, -.infinity, 2.75]) == 0.5)
        #expect(CUDAAgreement.lseDifference([1, -.infinity], [1, 0]) == .infinity)
        #expect(CUDAAgreement.lseDifference([.nan], [0]).isNaN)
    }
}
#endif
