import Foundation

// A learned sink logit (gpt-oss's attention sinks): one more entry in each row's softmax
// denominator, with no value, so a head can put weight "nowhere". It joins the row's state
// once, when the row is normalized (after every key and every split-K share).

/// A row's state with the sink folded in: `m` (the row maximum, in the state's score unit),
/// `l` (the denominator relative to `2^m`) and the factor by which `O` must be multiplied to
/// stay relative to the new `m`.
struct SinkFoldedRow {
    var m: Float
    var l: Float
    var outputFactor: Float
}

/// Folds the sink `sink` (base-2 units, `logit * log2(e)`; -inf: no sink) into a row of
/// maximum `m` and denominator `l` in the score unit `unit`. A row that saw no key keeps a
/// zero output and takes the sink alone as its denominator (its log-sum-exp is the sink).
@inline(__always)
func foldSink(m: Float, l: Float, sink: Float, unit: ScoreUnit) -> SinkFoldedRow {
    guard sink > -.infinity else { return SinkFoldedRow(m: m, l: l, outputFactor: 1) }
    let sinkInUnit = Float(unit.divide(Double(sink)))
    guard m > -.infinity, l > 0 else { return SinkFoldedRow(m: sinkInUnit, l: 1, outputFactor: 0) }
    let rowMax = unit.scale(Double(m))
    if Double(sink) > rowMax {
        // The sink is the larger: the state moves to it (factor < 1).
        let f = Float(Foundation.exp2(rowMax - Double(sink)))
        return SinkFoldedRow(m: sinkInUnit, l: l * f + 1, outputFactor: f)
    }
    return SinkFoldedRow(m: m, l: l + Float(Foundation.exp2(Double(sink) - rowMax)), outputFactor: 1)
}

/// Each row's sink in the kernel's base-2 score units, for rows `first..<first + rows` of
/// (b, h): `logit * log2(e)`, less the row's `s * log2(e) * q . mean` when the kernel scores
/// `q . (k - mean)` (K smoothing: the sink must move with the row's scores; the log-sum-exp's
/// later correction, `addKeyMeanScores`, adds the same product back, in Double as here),
/// plus `offset` (the FP8 emulation's `2^8.807`, which its `P` and `l` carry).
func fillRowSinks(_ out: UnsafeMutablePointer<Float>, rows: Int, first: Int, logit: Float, q: TensorView, b: Int, h: Int,
                  mean: UnsafePointer<Float>?, scale: Float, d: Int, offset: Float = 0, temp: UnsafeMutablePointer<Float>) {
    for r in 0..<rows {
        var shift = 0.0
        if let mean {
            let x = q.floats(b, h, first + r, count: d, temp: temp)
            var dot = 0.0
            for c in 0..<d { dot += Double(x[c]) * Double(mean[c]) }
            shift = Double(scale) * dot
        }
        out[r] = Float((Double(logit) - shift) * Double(log2e) + Double(offset))
    }
}
