#if CUDA
import SpargeAttn

/// Where ``SpargeAttn/SpargeAttention/sparse(q:k:v:output:shape:parameters:blockMap:backend:captureQuantized:lse:keyPadding:)``
/// runs: the CPU path or an NVIDIA GPU.
public enum SpargeBackend: Sendable {
    /// The CPU path with `threads` workers (`nil`: every CPU).
    case cpu(threads: Int? = nil)
    /// The GPU backend on `device` (`nil`: device 0). Needs `pvNumerics = .fp16` or `.fp8`
    /// (``SpargeCUDAPlan`` says where FP8 runs).
    case cuda(device: CUDADevice? = nil)
}

extension SpargeAttention {
    /// Sparse attention on the chosen backend, with the same inputs, outputs and result as
    /// the CPU entry point. The GPU form builds a `SpargeCUDAPlan` for the call; keep a plan
    /// to reuse its device buffers across calls. `lse` (`B,H,Nq` floats) gets each query row's
    /// natural-log log-sum-exp on both backends alike; `keyPadding` masks padded keys on both
    /// backends alike.
    @discardableResult
    public static func sparse(
        q: AttentionInput, k: AttentionInput, v: AttentionInput, output: AttentionOutput,
        shape: AttentionShape, parameters: SpargeParameters = .recommended, blockMap: BlockMap? = nil,
        backend: SpargeBackend, captureQuantized: Bool = false,
        lse: UnsafeMutableBufferPointer<Float>? = nil, keyPadding: KeyPaddingMask? = nil
    ) throws -> SparseAttentionResult {
        switch backend {
        case .cpu(let threads):
            return try sparse(q: q, k: k, v: v, output: output, shape: shape, parameters: parameters,
                              blockMap: blockMap, threads: threads, captureQuantized: captureQuantized,
                              lse: lse, keyPadding: keyPadding)
        case .cuda(let device):
            // Argument errors come before the driver is opened.
            try shape.validate()
            _ = try SpargeCUDAPlan.checkLSE(lse, shape: shape)
            try SpargeCUDAPlan.checkKeyPadding(keyPadding, shape: shape)
            let plan = try SpargeCUDAPlan(shape: shape, parameters: parameters, device: device)
            return try plan.run(q: q, k: k, v: v, output: output, blockMap: blockMap, captureQuantized: captureQuantized,
                                lse: lse, keyPadding: keyPadding)
        }
    }
}
#endif
