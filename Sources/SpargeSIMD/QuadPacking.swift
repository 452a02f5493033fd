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
public func packColumnQuads(
    _ src: UnsafePointer<Int8>, rows: Int, d: Int, stride: Int,
    columns: Int, into dst: UnsafeMutableRawPointer
) {
    let quads = quadCount(d)
    let corrections = quads * columns  // word index of column 0's correction
    if rows < columns {
        for j in 0...quads {
            for c in rows..<columns { dst.storeBytes(of: 0, toByteOffset: 4 * (j * columns + c), as: Int32.self) }
        }
    }
    for c in 0..<rows {
        let row = src + c * stride
        var j = 0
        while 4 * j + 16 <= d {
            let four = UnsafeRawPointer(row + 4 * j).loadUnaligned(as: SIMD4<Int32>.self)
            for i in 0..<4 { dst.storeBytes(of: four[i], toByteOffset: 4 * ((j + i) * columns + c), as: Int32.self) }
            j += 4
        }
        while j < quads {
            var word: UInt32 = 0
            for i in 0..<4 where 4 * j + i < d { word |= UInt32(UInt8(bitPattern: row[4 * j + i])) &<< (8 * i) }
            dst.storeBytes(of: Int32(bitPattern: word), toByteOffset: 4 * (j * columns + c), as: Int32.self)
            j += 1
        }
        var sum: Int32 = 0
        for i in 0..<d { sum &+= Int32(row[i]) }
        dst.storeBytes(of: 128 &* sum, toByteOffset: 4 * (corrections + c), as: Int32.self)
    }
}
