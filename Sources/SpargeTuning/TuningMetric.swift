import SpargeAttn
import SpargeFormats

/// The error measure the tuner bounds, per head, against exact attention.
public enum TuningMetric: String, Sendable, Hashable, CaseIterable {
    /// Relative L1 `sum|o - o_ref| / sum|o_ref|`: the paper's measure and the default.
    case l1
    /// `1 - cosine similarity` of the flattened head outputs (a bound of 0.002 is cosine 0.998).
    case cosine
    /// Relative RMSE `sqrt(sum (o - o_ref)^2 / sum o_ref^2)`.
    case rmse

    /// Default bounds `(stage 1, with stage 2)` of the metric: the authors' 0.07 / 0.08 for L1.
    public var defaultBounds: (bound: Double, pvBound: Double) {
        switch self {
        case .l1, .rmse: return (0.07, 0.08)
        case .cosine: return (0.002, 0.003)
        }
    }

    /// Per query head error of `output` against `reference` (both `B,H,Nq,D`), accumulated in
    /// Double over the batch. A non-finite value in either makes the head's error infinite (a
    /// failure; it used to come out as 0 when both were NaN).
    public func headErrors(_ output: [Float], reference: [Float], shape: AttentionShape) -> [Double] {
        let heads = shape.heads, row = shape.queryLength * shape.headDim
        return (0..<heads).map { h in
            var a = 0.0, b = 0.0, c = 0.0
            var finite = true
            for bi in 0..<shape.batch {
                let base = (bi * heads + h) * row
                for i in base..<(base + row) {
                    let o = Double(output[i]), r = Double(reference[i])
                    finite = finite && o.isFinite && r.isFinite
                    switch self {
                    case .l1: a += abs(o - r); b += abs(r)
                    case .rmse: a += (o - r) * (o - r); b += r * r
                    case .cosine: a += o * r; b += o * o; c += r * r
                    }
                }
            }
            if !finite { return .infinity }
            switch self {
            case .l1: return b > 0 ? a / b : (a > 0 ? .infinity : 0)
            case .rmse: return b > 0 ? (a / b).squareRoot() : (a > 0 ? .infinity : 0)
            case .cosine:
                let d = (b * c).squareRoot()
                return d > 0 ? Swift.max(0, 1 - a / d) : (b == c ? 0 : 1)
            }
        }
    }
}
