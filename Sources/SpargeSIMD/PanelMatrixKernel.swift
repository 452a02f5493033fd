// Dense matrix product on one packed panel: Y[r][0..<16] (+)= sum_k X[r][k] * panel[k][0..<16].
//
// Not an attention step: it serves the projections around attention (the SmolLM example's
// Q/K/V/O and MLP matrices), so that they run on the same run-time-chosen instruction set as
// the attention kernels. The weight matrix is stored as panels of 16 output columns, input by
// input (`panel[k * 16 + j]`), so that one input step is two 8-lane loads.
//
// Register tile: 6 rows x 16 columns (twelve 8-lane accumulators); leftover rows go one at a
// time with two accumulator pairs to hide the multiply-add latency.

extension KernelSet {
    /// Output columns of one panel.
    public static let panelColumns = 16

    /// `Y[r][0..<16] = X[r][0..<depth] * panel` for `rows` rows, or `+=` when `accumulate`.
    ///
    /// - Parameters:
    ///   - x: row-major input, `rows` rows of `depth` floats with row stride `ldx`.
    ///   - panel: `depth * 16` floats, `panel[k * 16 + j]` = weight of input `k` for output `j`.
    ///   - y: row-major output, 16 floats per row written (or added to) with row stride `ldy`.
    @inline(never)
    public static func multiplyPanel(
        x: UnsafePointer<Float>, ldx: Int, rows: Int, panel: UnsafePointer<Float>, depth: Int,
        y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool
    ) {
        var r = 0
        while r + 6 <= rows {
            panelTile6(x + r * ldx, ldx: ldx, panel, depth: depth, y + r * ldy, ldy: ldy, accumulate: accumulate)
            r += 6
        }
        while r < rows {
            panelTile1(x + r * ldx, panel, depth: depth, y + r * ldy, accumulate: accumulate)
            r += 1
        }
    }
}

@inline(__always)
private func storePanelRow(_ v0: Float8, _ v1: Float8, _ y: UnsafeMutablePointer<Float>, _ accumulate: Bool) {
    if accumulate {
        store(v0 + load8(y), y); store(v1 + load8(y + 8), y + 8)
    } else {
        store(v0, y); store(v1, y + 8)
    }
}

@inline(__always)
private func panelTile6(_ x: UnsafePointer<Float>, ldx: Int, _ w: UnsafePointer<Float>, depth: Int,
                        _ y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool) {
    var a00 = Float8(), a01 = Float8(), a10 = Float8(), a11 = Float8()
    var a20 = Float8(), a21 = Float8(), a30 = Float8(), a31 = Float8()
    var a40 = Float8(), a41 = Float8(), a50 = Float8(), a51 = Float8()
    let x0 = x, x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx, x4 = x + 4 * ldx, x5 = x + 5 * ldx
    var wp = w
    for i in 0..<depth {
        let w0 = load8(wp), w1 = load8(wp + 8)
        wp += 16
        var b = Float8(repeating: x0[i])
        a00 = multiplyAdd(b, w0, a00); a01 = multiplyAdd(b, w1, a01)
        b = Float8(repeating: x1[i])
        a10 = multiplyAdd(b, w0, a10); a11 = multiplyAdd(b, w1, a11)
        b = Float8(repeating: x2[i])
        a20 = multiplyAdd(b, w0, a20); a21 = multiplyAdd(b, w1, a21)
        b = Float8(repeating: x3[i])
        a30 = multiplyAdd(b, w0, a30); a31 = multiplyAdd(b, w1, a31)
        b = Float8(repeating: x4[i])
        a40 = multiplyAdd(b, w0, a40); a41 = multiplyAdd(b, w1, a41)
        b = Float8(repeating: x5[i])
        a50 = multiplyAdd(b, w0, a50); a51 = multiplyAdd(b, w1, a51)
    }
    storePanelRow(a00, a01, y, accumulate)
    storePanelRow(a10, a11, y + ldy, accumulate)
    storePanelRow(a20, a21, y + 2 * ldy, accumulate)
    storePanelRow(a30, a31, y + 3 * ldy, accumulate)
    storePanelRow(a40, a41, y + 4 * ldy, accumulate)
    storePanelRow(a50, a51, y + 5 * ldy, accumulate)
}

@inline(__always)
private func panelTile1(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, depth: Int,
                        _ y: UnsafeMutablePointer<Float>, accumulate: Bool) {
    var a0 = Float8(), a1 = Float8(), b0 = Float8(), b1 = Float8()
    var i = 0
    while i + 2 <= depth {
        let s0 = Float8(repeating: x[i]), s1 = Float8(repeating: x[i + 1])
        let wp = w + i * 16
        a0 = multiplyAdd(s0, load8(wp), a0); a1 = multiplyAdd(s0, load8(wp + 8), a1)
        b0 = multiplyAdd(s1, load8(wp + 16), b0); b1 = multiplyAdd(s1, load8(wp + 24), b1)
        i += 2
    }
    if i < depth {
        let s = Float8(repeating: x[i])
        a0 = multiplyAdd(s, load8(w + i * 16), a0); a1 = multiplyAdd(s, load8(w + i * 16 + 8), a1)
    }
    storePanelRow(a0 + b0, a1 + b1, y, accumulate)
}
