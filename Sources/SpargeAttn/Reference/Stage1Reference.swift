/// Literal forms of stage-1 quantities, for teaching and for testing the fast forms.
public enum Stage1Reference {
    /// Mean pairwise cosine similarity of `rows` rows of length `d`: the Gram matrix of the
    /// unit rows summed over all pairs, divided by `rows^2` (<doc:ExactSemantics> section 2, step 2).
    /// The fast path computes the same value as `|sum of unit rows|^2 / rows^2`.
    public static func selfSimilarity(_ x: [Float], rows: Int, d: Int) -> Double {
        var unit = [Double](repeating: 0, count: rows * d)
        for r in 0..<rows {
            var n2 = 0.0
            for c in 0..<d { n2 += Double(x[r * d + c]) * Double(x[r * d + c]) }
            let n = n2.squareRoot()
            for c in 0..<d { unit[r * d + c] = Double(x[r * d + c]) / n }
        }
        var total = 0.0
        for a in 0..<rows {
            for b in 0..<rows {
                var dot = 0.0
                for c in 0..<d { dot += unit[a * d + c] * unit[b * d + c] }
                total += dot
            }
        }
        return total / Double(rows * rows)
    }
}
