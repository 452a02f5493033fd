/// A weight matrix `W` (`rows` outputs x `columns` inputs) packed for ``MatrixKernel``: panels of
/// 16 output rows, each stored input by input (`panel[k * 16 + j] = W[16 p + j][k]`), so that the
/// kernel streams one panel with two 8-wide loads per input.
struct PackedMatrix: Sendable {
    static let panelWidth = 16
    let rows: Int
    let columns: Int
    let data: [Float]

    init(rows: Int, columns: Int, rowMajor w: [Float]) throws {
        guard rows % Self.panelWidth == 0, w.count == rows * columns else {
            throw ModelError.shape("a \(rows) x \(columns) matrix needs a multiple of 16 rows and \(rows * columns) values (has \(w.count))")
        }
        self.rows = rows
        self.columns = columns
        var packed = [Float](repeating: 0, count: rows * columns)
        for p in 0..<(rows / Self.panelWidth) {
            for j in 0..<Self.panelWidth {
                let src = (p * Self.panelWidth + j) * columns, dst = p * columns * Self.panelWidth + j
                for k in 0..<columns { packed[dst + k * Self.panelWidth] = w[src + k] }
            }
        }
        data = packed
    }
}

/// `Y = X W^T` (or `Y += X W^T`) for row-major `X` (`n x columns`, leading dimension `ldx`) and
/// `Y` (`n x rows`, leading dimension `ldy`), on Swift SIMD types: a 6 x 16 register tile
/// (twelve 8-wide accumulators), work split over threads in coarse (row chunk, panel chunk) items.
enum MatrixKernel {
    static let tileRows = 6
    static let rowChunk = 48
    static let panelChunk = 8

    static func multiply(_ x: UnsafePointer<Float>, ldx: Int, n: Int, _ w: PackedMatrix,
                         into y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool, threads: Int) {
        let panels = w.rows / PackedMatrix.panelWidth
        let rowChunks = (n + rowChunk - 1) / rowChunk
        let panelChunks = (panels + panelChunk - 1) / panelChunk
        let items = rowChunks * panelChunks
        // Addresses cross the closure as integers: the buffers outlive the call, and each item
        // writes a disjoint block of Y.
        let xa = UInt(bitPattern: x), ya = UInt(bitPattern: y)
        w.data.withUnsafeBufferPointer { wp in
            let wa = UInt(bitPattern: wp.baseAddress!)
            let work = { (item: Int) in
                let x = UnsafePointer<Float>(bitPattern: xa)!, y = UnsafeMutablePointer<Float>(bitPattern: ya)!
                let wBase = UnsafePointer<Float>(bitPattern: wa)!
                let rc = item / panelChunks, pc = item % panelChunks
                let r0 = rc * rowChunk, r1 = min(n, r0 + rowChunk)
                let p0 = pc * panelChunk, p1 = min(panels, p0 + panelChunk)
                for p in p0..<p1 {
                    let panel = wBase + p * w.columns * PackedMatrix.panelWidth
                    var r = r0
                    while r + tileRows <= r1 {
                        tile6(x + r * ldx, ldx: ldx, panel, k: w.columns, y + r * ldy + p * 16, ldy: ldy, accumulate: accumulate)
                        r += tileRows
                    }
                    while r < r1 {
                        tile1(x + r * ldx, panel, k: w.columns, y + r * ldy + p * 16, accumulate: accumulate)
                        r += 1
                    }
                }
            }
            parallelFor(items: items, threads: threads, work)
        }
    }

    /// `a * b + c`: fused on arm64; a multiply and an add on x86-64, where this example is
    /// compiled for the baseline (SSE2: a fused form would be one libm `fmaf` call per lane).
    /// The library's kernels choose AVX2 / AVX-512 at run time; this projection kernel does not
    /// (yet): it is the example's own code.
    @inline(__always)
    private static func fma(_ a: SIMD8<Float>, _ b: SIMD8<Float>, _ c: SIMD8<Float>) -> SIMD8<Float> {
        #if arch(arm64)
        return c.addingProduct(a, b)
        #else
        return a * b + c
        #endif
    }

    @inline(__always)
    private static func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inline(__always)
    private static func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ accumulate: Bool) {
        let r = UnsafeMutableRawPointer(p)
        r.storeBytes(of: accumulate ? v + r.loadUnaligned(as: SIMD8<Float>.self) : v, as: SIMD8<Float>.self)
    }

    private static func tile6(_ x: UnsafePointer<Float>, ldx: Int, _ w: UnsafePointer<Float>, k: Int,
                              _ y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool) {
        var a00 = SIMD8<Float>(), a01 = SIMD8<Float>(), a10 = SIMD8<Float>(), a11 = SIMD8<Float>()
        var a20 = SIMD8<Float>(), a21 = SIMD8<Float>(), a30 = SIMD8<Float>(), a31 = SIMD8<Float>()
        var a40 = SIMD8<Float>(), a41 = SIMD8<Float>(), a50 = SIMD8<Float>(), a51 = SIMD8<Float>()
        let x0 = x, x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx, x4 = x + 4 * ldx, x5 = x + 5 * ldx
        var wp = w
        for i in 0..<k {
            let w0 = load(wp), w1 = load(wp + 8)
            wp += 16
            var b = SIMD8<Float>(repeating: x0[i])
            a00 = fma(b, w0, a00); a01 = fma(b, w1, a01)
            b = SIMD8<Float>(repeating: x1[i])
            a10 = fma(b, w0, a10); a11 = fma(b, w1, a11)
            b = SIMD8<Float>(repeating: x2[i])
            a20 = fma(b, w0, a20); a21 = fma(b, w1, a21)
            b = SIMD8<Float>(repeating: x3[i])
            a30 = fma(b, w0, a30); a31 = fma(b, w1, a31)
            b = SIMD8<Float>(repeating: x4[i])
            a40 = fma(b, w0, a40); a41 = fma(b, w1, a41)
            b = SIMD8<Float>(repeating: x5[i])
            a50 = fma(b, w0, a50); a51 = fma(b, w1, a51)
        }
        store(a00, y, accumulate); store(a01, y + 8, accumulate)
        store(a10, y + ldy, accumulate); store(a11, y + ldy + 8, accumulate)
        store(a20, y + 2 * ldy, accumulate); store(a21, y + 2 * ldy + 8, accumulate)
        store(a30, y + 3 * ldy, accumulate); store(a31, y + 3 * ldy + 8, accumulate)
        store(a40, y + 4 * ldy, accumulate); store(a41, y + 4 * ldy + 8, accumulate)
        store(a50, y + 5 * ldy, accumulate); store(a51, y + 5 * ldy + 8, accumulate)
    }

    /// One row (decoding, and the tail of a prefill): four independent accumulator pairs hide the FMA latency.
    private static func tile1(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, k: Int,
                              _ y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), b0 = SIMD8<Float>(), b1 = SIMD8<Float>()
        var i = 0
        while i + 2 <= k {
            let s0 = SIMD8<Float>(repeating: x[i]), s1 = SIMD8<Float>(repeating: x[i + 1])
            let wp = w + i * 16
            a0 = fma(s0, load(wp), a0); a1 = fma(s0, load(wp + 8), a1)
            b0 = fma(s1, load(wp + 16), b0); b1 = fma(s1, load(wp + 24), b1)
            i += 2
        }
        if i < k {
            let s = SIMD8<Float>(repeating: x[i])
            a0 = fma(s, load(w + i * 16), a0); a1 = fma(s, load(w + i * 16 + 8), a1)
        }
        store(a0 + b0, y, accumulate); store(a1 + b1, y + 8, accumulate)
    }
}
