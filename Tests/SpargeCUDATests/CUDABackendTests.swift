#if CUDA
import Foundation
import Testing
import SpargeAttn
import SpargeCUDA

/// The GPU backend's contract that holds on any machine: configurations it cannot run are
/// refused with ``CUDAError/unsupported(_:)`` before any driver is touched, and a machine
/// without the NVIDIA driver gets ``CUDAError/libraryNotFound(library:tried:hint:)``.
@Suite struct CUDABackendTests {
    static let shape = AttentionShape(batch: 1, heads: 2, queryLength: 300, headDim: 64)

    @Test func unsupportedConfigurationsAreRefusedWithAReason() throws {
        func expectUnsupported(_ shape: AttentionShape, _ p: SpargeParameters, mentions word: String) {
            do {
                _ = try SpargeCUDAPlan(shape: shape, parameters: p)
                Issue.record("expected an unsupported-configuration error mentioning \(word)")
            } catch CUDAError.unsupported(let message) {
                #expect(message.contains(word), "\(message)")
            } catch {
                Issue.record("expected CUDAError.unsupported, got \(error)")
            }
        }
        expectUnsupported(AttentionShape(batch: 1, heads: 1, queryLength: 64, headDim: 80), CUDATestSupport.fp16(), mentions: "head dim 80")
        expectUnsupported(AttentionShape(batch: 1, heads: 1, queryLength: 64, headDim: 256), CUDATestSupport.fp16(), mentions: "head dim 256")
        var fp32 = CUDATestSupport.fp16()
        fp32.gpuReproduction.pvNumerics = .fp32
        expectUnsupported(Self.shape, fp32, mentions: "pvNumerics = .fp16")
        var blocks = CUDATestSupport.fp16()
        blocks.blockQ = 256
        expectUnsupported(Self.shape, blocks, mentions: "blockQ 256")
        // Batch x heads is a grid dimension (at most 65535): a large batched decode says how to split it.
        expectUnsupported(AttentionShape(batch: 2048, heads: 32, queryLength: 1, keyLength: 64, headDim: 64), CUDATestSupport.fp16(),
                          mentions: "at most 2047 sequences")
    }

    /// A causal sliding window is not among the refused configurations (the kernels skip and
    /// mask by it): without a driver the plan fails at the driver, with one it is made.
    @Test func slidingWindowIsNotRefused() throws {
        var p = CUDATestSupport.fp16()
        p.causal = true
        for window in [1, 100, Int.max] {
            p.slidingWindow = window
            do {
                _ = try SpargeCUDAPlan(shape: Self.shape, parameters: p)
            } catch CUDAError.unsupported(let message) {
                Issue.record("window \(window) refused: \(message)")
            } catch {
                // No driver or no device here: every check before the driver passed.
            }
        }
    }

    /// An output view with gaps between its rows (token stride wider than the head dim, as in
    /// a fused buffer): the GPU writes the rows as a dense output's and leaves the gaps as they
    /// were. Skipped where no driver can be loaded.
    @Test func stridedOutputKeepsItsGaps() throws {
        guard let device = try CUDATestSupport.deviceOrSkip("strided output test") else { return }
        let shape = AttentionShape(batch: 1, heads: 2, queryLength: 300, headDim: 64)
        let (q, k, v) = CUDATestSupport.randomHalfInputs(shape)
        let kept = try q.withUnsafeBufferPointer { q in try k.withUnsafeBufferPointer { k in try v.withUnsafeBufferPointer { v in
            try CUDAAgreementCheck.stridedOutputKeepsGaps(q: AttentionInput(q), k: AttentionInput(k), v: AttentionInput(v),
                                                          shape: shape, parameters: CUDATestSupport.fp16(), device: device)
        } } }
        #expect(kept)
    }

    /// The backend choice: `.cpu` is the CPU entry point itself (same bits).
    @Test func cpuBackendIsTheCPUPath() throws {
        let shape = AttentionShape(batch: 1, heads: 2, queryLength: 200, headDim: 32)
        var rng = SystemRandomNumberGenerator()
        let q = (0..<shape.queryElements).map { _ in Float.random(in: -1...1, using: &rng) }
        var a = [Float](repeating: 0, count: shape.queryElements), b = a
        let ra = try q.withUnsafeBufferPointer { x in try a.withUnsafeMutableBufferPointer { o in
            try SpargeAttention.sparse(q: AttentionInput(x), k: AttentionInput(x), v: AttentionInput(x), output: AttentionOutput(o),
                                       shape: shape, backend: .cpu(threads: 2))
        } }
        let rb = try q.withUnsafeBufferPointer { x in try b.withUnsafeMutableBufferPointer { o in
            try SpargeAttention.sparse(q: AttentionInput(x), k: AttentionInput(x), v: AttentionInput(x), output: AttentionOutput(o),
                                       shape: shape, threads: 1)
        } }
        #expect(a == b)
        #expect(ra == rb)
    }

    @Test func invalidParametersGetTheLibrarysOwnError() {
        var p = CUDATestSupport.fp16()
        p.selection = .topK(1.5)
        #expect(throws: SpargeError.self) { _ = try SpargeCUDAPlan(shape: Self.shape, parameters: p) }
    }

    /// Without a driver the error names the library, what was tried and how to fix it; with
    /// one, the device reports a compute capability of 8.0 or more.
    @Test func deviceOpensOrExplainsWhyNot() throws {
        do {
            let d = try CUDADevice.open()
            #expect(d.computeCapability.major >= 8)
        } catch CUDAError.libraryNotFound(let lib, let tried, let hint) {
            #expect(lib.contains("libcuda"))
            #expect(tried.contains("libcuda.so.1"))
            #expect(hint.contains("SPARGE_CUDA_DRIVER"))
            let text = String(describing: CUDAError.libraryNotFound(library: lib, tried: tried, hint: hint))
            #expect(text.contains("cannot load"))
        }
    }

    /// On a machine with a GPU: identical masks and INT8 tensors, output cosine >= 0.9999
    /// against the CPU path (the same check `sparge cuda-check` runs on the goldens and
    /// random shapes). Skipped, with the reason printed, where no driver can be loaded.
    @Test func agreesWithTheCPUPathOnAGPU() throws {
        guard let device = try CUDATestSupport.deviceOrSkip("GPU agreement test") else { return }
        let shape = AttentionShape(batch: 1, heads: 4, kvHeads: 2, queryLength: 777, keyLength: 901, headDim: 64)
        let (q, k, v) = CUDATestSupport.randomHalfInputs(shape)
        for causal in [false, true] {
            var p = CUDATestSupport.fp16()
            p.causal = causal
            let r = try q.withUnsafeBufferPointer { q in try k.withUnsafeBufferPointer { k in try v.withUnsafeBufferPointer { v in
                try CUDAAgreementCheck.compare(label: "random", q: AttentionInput(q), k: AttentionInput(k), v: AttentionInput(v),
                                               shape: shape, parameters: p, device: device)
            } } }
            #expect(r.passed(), "\(r)")
        }
    }
}
#endif
