// The quad layout of the AVX-512 VNNI set's INT8 score tile (`vpdpbusd`, which multiplies
// four unsigned bytes by four signed ones per int32 lane).
//
// A row operand (a query row) is `quadCount(D)` Int32 words, each four consecutive channels as
// unsigned bytes `q + 128` (channels past D are 128, i.e. q = 0). A column operand (a block of
// keys) is "quad-major": for each quad j, for each column c, the word of the four signed bytes
// k[c][4j..4j+3] (0 past D and for missing columns); after the `quads * columns` words come
// `columns` int32 corrections `128 * sum_d k[c][d]`. Then
// sum_j dot(q + 128, k) - correction[c] = sum_d q[d] * k[c][d], exactly (every partial sum
// is below 2^31 for D up to 2^16).

/// Number of four-channel words for a reduction length `d`.
@inlinable @inline(__always)
public func quadCount(_ d: Int) -> Int { (d + 3) / 4 }

/// The packed quad row of a query of zeros (every byte 128).
public let zeroQuadWord = Int32(bitPattern: 0x8080_8080)

/// Writes `d` int8 channels as `quadCount(d)` words of unsigned bytes `q + 128`.
@inlinable @inline(__always)
public func packRowQuads(_ src: UnsafePointer<Int8>, d: Int, into dst: UnsafeMutablePointer<Int32>) {
    let bytes = UnsafeMutableRawPointer(dst)
    var c = 0
    while c + 16 <= d {
        let v = UnsafeRawPointer(src + c).loadUnaligned(as: SIMD16<UInt8>.self)
        bytes.storeBytes(of: v ^ 0x80, toByteOffset: c, as: SIMD16<UInt8>.self)
        c += 16
    }
    while c < 4 * quadCount(d) {
        bytes.storeBytes(of: c < d ? UInt8(bitPattern: src[c]) ^ 0x80 : 0x80, toByteOffset: c, as: UInt8.self)
        c += 1
    }
}

/// Packs `rows` int8 rows of length `d` (row stride `stride`) into the quad-major column
/// layout with `columns` columns (`columns >= rows`; extra columns are zero), corrections
/// included. `dst` must hold `(quadCount(d) + 1) * columns` Int32 words.
///
/// In the AVX-512 VNNI set (the one set that reads this layout), 16 keys by 64 channels at a
/// time are one 16 x 16 transpose of words in registers and 16 vector stores, and the keys'
/// byte sums one `vpdpbusd` per stored vector; the rest (keys past a multiple of 16, channels
/// past a multiple of 64) goes word by word, as everywhere in the other sets.
public func packColumnQuads(
    _ src: UnsafePointer<Int8>, rows: Int, d: Int, stride: Int,
    columns: Int, into dst: UnsafeMutableRawPointer
) {
    let quads = quadCount(d)
    let corrections = quads &* columns  // word index of column 0's correction
    if rows < columns {
        for j in 0...quads {
            for c in rows..<columns { dst.storeBytes(of: 0, toByteOffset: 4 &* (j &* columns &+ c), as: Int32.self) }
        }
    }
    var c = 0
    #if SPARGE_VNNI512
    let groups = d / 64  // 16-quad groups inside the row
    if groups > 0 {
        while c &+ 16 <= rows {
            var sums = SIMD16<Int32>()
            for g in 0..<groups {
                sums = packQuadTile(src + c &* stride + 64 &* g, stride: stride,
                                    into: dst + 4 &* (16 &* g &* columns &+ c), columns: columns, sums: sums)
            }
            if 16 &* groups < quads {
                for i in 0..<16 {
                    sums[i] &+= packQuadColumn(src + (c &+ i) &* stride, column: c &+ i, fromQuad: 16 &* groups, d: d,
                                               columns: columns, into: dst)
                }
            }
            dst.storeBytes(of: sums &* 128, toByteOffset: 4 &* (corrections &+ c), as: SIMD16<Int32>.self)
            c &+= 16
        }
    }
    #endif
    while c < rows {
        let sum = packQuadColumn(src + c &* stride, column: c, fromQuad: 0, d: d, columns: columns, into: dst)
        dst.storeBytes(of: 128 &* sum, toByteOffset: 4 &* (corrections &+ c), as: Int32.self)
        c &+= 1
    }
}

/// Key `column`'s quads from `first` on (channels `4 * first ..< d` of `row`) into their words
/// of the quad-major layout; returns the sum of those channels.
@inlinable @inline(__always)
func packQuadColumn(_ row: UnsafePointer<Int8>, column: Int, fromQuad first: Int, d: Int, columns: Int,
                    into dst: UnsafeMutableRawPointer) -> Int32 {
    var j = first, sum: Int32 = 0
    while 4 &* j &+ 4 <= d {
        let word = UnsafeRawPointer(row + 4 &* j).loadUnaligned(as: Int32.self)
        dst.storeBytes(of: word, toByteOffset: 4 &* (j &* columns &+ column), as: Int32.self)
        sum &+= ((word &<< 24) &>> 24) &+ ((word &<< 16) &>> 24) &+ ((word &<< 8) &>> 24) &+ (word &>> 24)
        j &+= 1
    }
    if 4 &* j < d {
        var word: UInt32 = 0
        for i in 0..<(d &- 4 &* j) {
            word |= UInt32(UInt8(bitPattern: row[4 &* j &+ i])) &<< (8 &* i)
            sum &+= Int32(row[4 &* j &+ i])
        }
        dst.storeBytes(of: Int32(bitPattern: word), toByteOffset: 4 &* (j &* columns &+ column), as: Int32.self)
    }
    return sum
}

#if SPARGE_VNNI512
import SpargeSIMDShuffles
import SpargeSIMDVNNI

/// Keys `0..<16` (row stride `stride` bytes) by 64 channels at `src` as 16 quad rows of 16 words
/// (`columns` words apart) from `dst`: the 16 x 16 word matrix transposed in registers. Returns
/// `sums` plus each key's sum of those 64 channels (a `vpdpbusd` of each stored vector with
/// unsigned ones).
@inlinable @inline(__always)
func packQuadTile(_ src: UnsafePointer<Int8>, stride: Int, into dst: UnsafeMutableRawPointer, columns: Int,
                  sums: SIMD16<Int32>) -> SIMD16<Int32> {
    @inline(__always) func row(_ i: Int) -> SIMD16<Int32> {
        UnsafeRawPointer(src + i &* stride).loadUnaligned(as: SIMD16<Int32>.self)
    }
    var (r0, r1, r2, r3, r4, r5, r6, r7) = (row(0), row(1), row(2), row(3), row(4), row(5), row(6), row(7))
    var (r8, r9, r10, r11, r12, r13, r14, r15) = (row(8), row(9), row(10), row(11), row(12), row(13), row(14), row(15))
    (r0, r1) = swapLaneBit0(r0, r1); (r2, r3) = swapLaneBit0(r2, r3); (r4, r5) = swapLaneBit0(r4, r5); (r6, r7) = swapLaneBit0(r6, r7)
    (r8, r9) = swapLaneBit0(r8, r9); (r10, r11) = swapLaneBit0(r10, r11); (r12, r13) = swapLaneBit0(r12, r13); (r14, r15) = swapLaneBit0(r14, r15)
    (r0, r2) = swapLaneBit1(r0, r2); (r1, r3) = swapLaneBit1(r1, r3); (r4, r6) = swapLaneBit1(r4, r6); (r5, r7) = swapLaneBit1(r5, r7)
    (r8, r10) = swapLaneBit1(r8, r10); (r9, r11) = swapLaneBit1(r9, r11); (r12, r14) = swapLaneBit1(r12, r14); (r13, r15) = swapLaneBit1(r13, r15)
    (r0, r4) = swapLaneBit2(r0, r4); (r1, r5) = swapLaneBit2(r1, r5); (r2, r6) = swapLaneBit2(r2, r6); (r3, r7) = swapLaneBit2(r3, r7)
    (r8, r12) = swapLaneBit2(r8, r12); (r9, r13) = swapLaneBit2(r9, r13); (r10, r14) = swapLaneBit2(r10, r14); (r11, r15) = swapLaneBit2(r11, r15)
    (r0, r8) = swapLaneBit3(r0, r8); (r1, r9) = swapLaneBit3(r1, r9); (r2, r10) = swapLaneBit3(r2, r10); (r3, r11) = swapLaneBit3(r3, r11)
    (r4, r12) = swapLaneBit3(r4, r12); (r5, r13) = swapLaneBit3(r5, r13); (r6, r14) = swapLaneBit3(r6, r14); (r7, r15) = swapLaneBit3(r7, r15)
    let ones = SIMD16<Int32>(repeating: 0x0101_0101)
    var sums = sums
    @inline(__always) func put(_ v: SIMD16<Int32>, _ j: Int) {
        dst.storeBytes(of: v, toByteOffset: 4 &* j &* columns, as: SIMD16<Int32>.self)
        sums = vnniMultiplyAddQuads(ones, v, sums)
    }
    put(r0, 0); put(r1, 1); put(r2, 2); put(r3, 3); put(r4, 4); put(r5, 5); put(r6, 6); put(r7, 7)
    put(r8, 8); put(r9, 9); put(r10, 10); put(r11, 11); put(r12, 12); put(r13, 13); put(r14, 14); put(r15, 15)
    return sums
}
#endif
