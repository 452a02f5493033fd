// Query rows against a table stored channel by channel: out[r][j] = sum_c q[r][c] * table[c][j].
//
// Stage 1's compressed scores (mean-pooled query blocks against the pooled key blocks, whose
// table the pipeline keeps channel-major so that it is read front to back). Stage 1 decides
// which blocks run, so its scores must have the same bits on every CPU: each product is
// rounded, then added in channel order starting from +0 (never fused), which is what the
// plain scalar dot product does, whatever the kernel set, the row count or the column count.
// The table is walked row after row (channel after channel) over blocks of 1,024 columns, four
// channels at a time, adding into up to four output rows that stay in the L1 cache: stage 1 of a
// decoding step at 128k cached keys reads a 1 MB table per kv head, and walking it column block
// by column block down all its channels (a vector's accumulators in registers) cost a TLB miss
// per channel: three times the time of this order (perf samples of a decoding step).

extension KernelSet {
    /// `out[r][j] = sum_c q[r][c] * table[c][j]` for `rows` x `columns` over `channels`,
    /// products rounded and added in channel order (the scalar loop's bits).
    ///
    /// - Parameters:
    ///   - q: query rows, row stride `qStride` (`channels` floats each).
    ///   - table: channel `c` of column `j` at `table[c * tableStride + j]` (`columns` readable per channel).
    ///   - out: scores, row stride `outStride`.
    @inline(never)
    public static func channelMajorScores(
        q: UnsafePointer<Float>, qStride: Int, rows: Int,
        table: UnsafePointer<Float>, tableStride: Int, channels: Int, columns: Int,
        out: UnsafeMutablePointer<Float>, outStride: Int
    ) {
        var r = 0
        while r < rows {
            let group = rows - r >= 4 ? 4 : 1
            var j = 0
            while j < columns {
                let width = Swift.min(1024, columns - j)
                if group == 4 {
                    channelMajorBlock(rows: 4, q: q + r * qStride, qStride: qStride, table: table + j, tableStride: tableStride,
                                      channels: channels, width: width, out: out + r * outStride + j, outStride: outStride)
                } else {
                    channelMajorBlock(rows: 1, q: q + r * qStride, qStride: qStride, table: table + j, tableStride: tableStride,
                                      channels: channels, width: width, out: out + r * outStride + j, outStride: outStride)
                }
                j += width
            }
            r += group
        }
    }
}

/// One block of `width` columns for `rows` (1 or 4, a constant after inlining) output rows:
/// zeroed, then four channels at a time (each lane adding its four products in channel order;
/// the four table vectors loaded once for every row), then the channels left one at a time.
@inline(__always)
func channelMajorBlock(rows: Int, q: UnsafePointer<Float>, qStride: Int, table: UnsafePointer<Float>, tableStride: Int,
                       channels: Int, width: Int, out: UnsafeMutablePointer<Float>, outStride: Int) {
    let n = FloatV.scalarCount
    let full = width - width % n
    for r in 0..<rows { (out + r * outStride).update(repeating: 0, count: width) }
    // The query values of four channels for up to four rows, read before the column loop (the
    // output stores could alias them as far as the compiler knows).
    var w = SIMD16<Float>()
    var c = 0
    while c + 4 <= channels {
        let t0 = table + c * tableStride, t1 = t0 + tableStride, t2 = t1 + tableStride, t3 = t2 + tableStride
        for r in 0..<rows {
            for k in 0..<4 { w[r * 4 + k] = q[r * qStride + c + k] }
        }
        var j = 0
        while j < full {
            let x0: FloatV = load(t0 + j), x1: FloatV = load(t1 + j), x2: FloatV = load(t2 + j), x3: FloatV = load(t3 + j)
            for r in 0..<rows {
                let o = out + r * outStride + j
                var sum: FloatV = load(o)
                sum = multiplyThenAdd(FloatV(repeating: w[r * 4]), x0, sum)
                sum = multiplyThenAdd(FloatV(repeating: w[r * 4 + 1]), x1, sum)
                sum = multiplyThenAdd(FloatV(repeating: w[r * 4 + 2]), x2, sum)
                sum = multiplyThenAdd(FloatV(repeating: w[r * 4 + 3]), x3, sum)
                store(sum, o)
            }
            j += n
        }
        while j < width {
            for r in 0..<rows {
                let o = out + r * outStride + j
                var sum = o.pointee
                sum = w[r * 4] * t0[j] + sum
                sum = w[r * 4 + 1] * t1[j] + sum
                sum = w[r * 4 + 2] * t2[j] + sum
                sum = w[r * 4 + 3] * t3[j] + sum
                o.pointee = sum
            }
            j += 1
        }
        c += 4
    }
    while c < channels {
        let t0 = table + c * tableStride
        for r in 0..<rows { w[r] = q[r * qStride + c] }
        var j = 0
        while j < full {
            let x0: FloatV = load(t0 + j)
            for r in 0..<rows {
                let o = out + r * outStride + j
                store(multiplyThenAdd(FloatV(repeating: w[r]), x0, load(o)), o)
            }
            j += n
        }
        while j < width {
            for r in 0..<rows { out[r * outStride + j] = w[r] * t0[j] + out[r * outStride + j] }
            j += 1
        }
        c += 1
    }
}
