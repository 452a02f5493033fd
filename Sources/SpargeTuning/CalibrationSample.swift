import SpargeAttn
import SpargeFormats

/// One calibration input of a layer: its Q, K, V (`B,H,Nq,D` and `B,Hkv,Nk,D` fp32), for
/// example one prompt, one denoising step or one passage.
public struct CalibrationSample: Sendable {
    /// Queries, `B,H,Nq,D`.
    public var q: [Float]
    /// Keys, `B,Hkv,Nk,D`.
    public var k: [Float]
    /// Values, `B,Hkv,Nk,D`.
    public var v: [Float]
    /// The shape of the call.
    public var shape: AttentionShape

    /// A sample from `B,H,N,D` fp32 tensors (K and V with `shape.kvHeads` heads).
    public init(q: [Float], k: [Float], v: [Float], shape: AttentionShape) {
        self.q = q; self.k = k; self.v = v; self.shape = shape
    }

    /// Throws ``TuningError/invalidSamples(_:)`` when the buffers do not fit the shape.
    func validate(index i: Int) throws {
        do { try shape.validate() } catch { throw TuningError.invalidSamples("sample \(i): \(error)") }
        if q.count != shape.queryElements || k.count != shape.keyElements || v.count != shape.keyElements {
            throw TuningError.invalidSamples("sample \(i) has \(q.count)/\(k.count)/\(v.count) q/k/v elements but its shape \(shape) needs \(shape.queryElements)/\(shape.keyElements)/\(shape.keyElements)")
        }
        // A NaN or infinity would make every error NaN: no bound could be checked.
        for (name, x) in [("q", q), ("k", k), ("v", v)] {
            if let j = x.firstIndex(where: { !$0.isFinite }) {
                throw TuningError.invalidSamples("sample \(i): \(name)[\(j)] is \(x[j]); the inputs must be finite")
            }
        }
    }
}

/// Progress of a tuning run, reported after each theta of the grid.
public struct TuningProgress: Sendable, Hashable {
    /// Grid values done, of `thetaCount`.
    public var thetasDone: Int
    /// Grid values in all.
    public var thetaCount: Int
    /// The theta just finished.
    public var theta: Float
    /// The mode being tuned.
    public var mode: TuningOptions.Mode
    /// Which pass this is, of `passes` (``TuningOptions/Mode/auto`` tunes CDF, then top-k).
    public var pass: Int
    /// Passes in all.
    public var passes: Int
    /// Heads whose search is over (a higher theta cannot make them sparser), of `heads`.
    public var headsDone: Int
    /// Query heads in all.
    public var heads: Int
    /// Seconds since this pass started.
    public var elapsedSeconds: Double
    /// Estimated seconds left, later passes included (the remaining grid at the pace so far).
    public var etaSeconds: Double
}
