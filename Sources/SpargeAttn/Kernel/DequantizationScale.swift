// The factor an INT8 score tile's int32 sums are multiplied by, shared by the per-head sparse
// kernel and the grouped decode kernel so that both form it the same way.

/// `q_scale * k_scale * factor` (`factor` is `s * log2(e)`) over the query block's score unit:
/// the GPU code's fp32 product, or, where fp32 could not hold it (a score unit above 1, or
/// `q_scale * k_scale` alone past 2^120 with a small softmax scale), the product in Double
/// divided by the unit, then rounded once.
struct DequantizationScale {
    let unit: ScoreUnit
    let factor: Float
    let wide: Bool

    /// `qScaleMax` and `kScaleMax` bound the scales the block will meet.
    init(unit: ScoreUnit, factor: Float, qScaleMax: Float, kScaleMax: Float) {
        self.unit = unit
        self.factor = factor
        wide = !unit.isOne || Double(qScaleMax) * Double(kScaleMax) > 0x1p120
    }

    @inline(__always)
    func callAsFunction(_ qScale: Float, _ kScale: Float) -> Float {
        wide ? Float(unit.divide(Double(qScale) * Double(kScale) * Double(factor))) : qScale * kScale * factor
    }
}
