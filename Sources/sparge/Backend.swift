import SpargeAttn
#if CUDA
import Foundation
import SpargeCUDA
#endif

/// The value of `--backend cpu|cuda`. Not the library's `SpargeBackend`: that type exists only
/// in a build with the CUDA trait, and this one must also parse `cuda` in a build without it
/// to say how to get the GPU backend.
enum Backend: String {
    case cpu, cuda

    init(_ name: String?) throws {
        guard let name else { self = .cpu; return }
        guard let b = Backend(rawValue: name) else { throw UsageError("--backend '\(name)' is not cpu or cuda") }
        #if !CUDA
        if b == .cuda {
            throw UsageError("this sparge was built without the GPU backend; build it with `swift build -c release --traits default,CUDA`")
        }
        #endif
        self = b
    }
}

/// The GPU backend as the CLI calls it: one `SpargeCUDAPlan` kept for the repeated calls of one
/// shape (`--repeat`), where `SpargeAttention.sparse(..., backend: .cuda())` would build one per call.
enum CUDABackend {
    static func sparse(q: AttentionInput, k: AttentionInput, v: AttentionInput, output: AttentionOutput, shape: AttentionShape,
                       parameters: SpargeParameters, blockMap: BlockMap?, captureQuantized: Bool,
                       countSkippedTiles: Bool = true) throws -> SparseAttentionResult {
        #if CUDA
        let plan = try planCache.plan(shape: shape, parameters: parameters, countSkippedTiles: countSkippedTiles)
        return try plan.run(q: q, k: k, v: v, output: output, blockMap: blockMap, captureQuantized: captureQuantized)
        #else
        throw UsageError("this sparge was built without the GPU backend; build it with `swift build -c release --traits default,CUDA`")
        #endif
    }

    #if CUDA
    /// One plan for repeated calls of the same shape (`--repeat`), so device buffers are reused.
    /// Sendable by its lock.
    final class PlanCache: @unchecked Sendable {
        private let lock = NSLock()
        private var last: (AttentionShape, SpargeParameters, SpargeCUDAPlan)?
        func plan(shape: AttentionShape, parameters: SpargeParameters, countSkippedTiles: Bool) throws -> SpargeCUDAPlan {
            lock.lock(); defer { lock.unlock() }
            if let (s, p, plan) = last, s == shape, p == parameters, plan.countSkippedTiles == countSkippedTiles { return plan }
            let plan = try SpargeCUDAPlan(shape: shape, parameters: parameters, countSkippedTiles: countSkippedTiles)
            last = (shape, parameters, plan)
            return plan
        }
    }
    static let planCache = PlanCache()
    #endif
}
