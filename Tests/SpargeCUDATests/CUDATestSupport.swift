#if CUDA
import SpargeAttn
import SpargeCUDA

/// Setup shared by the GPU test suites.
enum CUDATestSupport {
    /// The recommended parameters with fp16 P.V, the numerics of the GPU's tensor cores.
    static func fp16() -> SpargeParameters {
        var p = SpargeParameters.recommended
        p.gpuReproduction.pvNumerics = .fp16
        return p
    }

    /// The device, or nil (with the reason printed) on a machine whose driver cannot be loaded.
    static func deviceOrSkip(_ test: String) throws -> CUDADevice? {
        do { return try CUDADevice.open() } catch CUDAError.libraryNotFound(let lib, _, _) {
            print("SKIP \(test): \(lib) cannot be loaded on this machine (no NVIDIA driver)")
            return nil
        }
    }

    /// fp16 Q and K uniform in [-2, 2] (K shifted by `keyOffset`), V in [-1, 1], drawn in that order.
    static func randomHalfInputs(_ shape: AttentionShape, keyOffset: Float = 0) -> (q: [Float16], k: [Float16], v: [Float16]) {
        var rng = SystemRandomNumberGenerator()
        let q = (0..<shape.queryElements).map { _ in Float16(Float.random(in: -2...2, using: &rng)) }
        let k = (0..<shape.keyElements).map { _ in Float16(Float.random(in: -2...2, using: &rng) + keyOffset) }
        let v = (0..<shape.keyElements).map { _ in Float16(Float.random(in: -1...1, using: &rng)) }
        return (q, k, v)
    }
}
#endif
