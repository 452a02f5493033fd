// The masks of a score tile: key padding, the token-level causal mask, the sliding window and
// the per-pair attention mask.

/// Sets to -inf the padding columns (`>= validColumns`) and, with `causal`, the scores of keys
/// after `query + offset` and (with `window > 0`) those before `query + offset - window + 1`. With `zeroPaddingUpTo > validColumns` the padding columns below it
/// score 0 instead (the Triton kernel's unmasked key padding). With `pairs` (the attention
/// mask's bytes of the tile's first row and key, `pairStride` apart) the first `pairRows` rows
/// give -inf to every pair it forbids (the padding rows below them are never output).
@inline(__always)
func maskTile(
    scores: UnsafeMutablePointer<Float>, stride: Int, rows: Int, validColumns: Int,
    causal: Bool, firstQuery: Int, firstKey: Int, offset: Int, window: Int = 0, zeroPaddingUpTo: Int = 0,
    keyValid: UnsafePointer<UInt8>? = nil, pairs: UnsafePointer<UInt8>? = nil, pairStride: Int = 0, pairRows: Int = 0
) {
    let visibleColumns = Swift.max(validColumns, Swift.min(zeroPaddingUpTo, stride))
    for r in 0..<rows {
        let row = scores + r * stride
        if visibleColumns > validColumns {
            (row + validColumns).update(repeating: 0, count: visibleColumns - validColumns)
        }
        var limit = visibleColumns
        if causal {
            // Keys firstKey + c with c <= firstQuery + r + offset - firstKey are visible.
            limit = Swift.min(limit, Swift.max(0, firstQuery + r + offset - firstKey + 1))
        }
        if limit < stride { (row + limit).update(repeating: -.infinity, count: stride - limit) }
        if causal && window > 0 {
            // Keys before firstQuery + r + offset - window + 1 lie outside the sliding window.
            let before = Swift.min(Swift.max(0, firstQuery + r + offset - window + 1 - firstKey), limit)
            if before > 0 { row.update(repeating: -.infinity, count: before) }
        }
        // Key padding mask (`keyValid[c]` for key firstKey + c): padded keys get -inf.
        if let keyValid { for c in 0..<Swift.min(limit, validColumns) where keyValid[c] == 0 { row[c] = -.infinity } }
        if let pairs, r < pairRows {
            // Branch-free, so that it vectorizes (a select per lane).
            let allowed = pairs + r * pairStride
            for c in 0..<Swift.min(limit, validColumns) { row[c] = allowed[c] != 0 ? row[c] : -.infinity }
        }
    }
}
