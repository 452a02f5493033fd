/// A read-only view of a 4-D `B,H,N,D` tensor through strides (in elements). The kernels read
/// inputs only through views, so any layout that has unit stride along D can be used in place.
struct TensorView: @unchecked Sendable {
    var base: UnsafePointer<Float>
    var batchStride: Int
    var headStride: Int
    var rowStride: Int

    init(base: UnsafePointer<Float>, batchStride: Int, headStride: Int, rowStride: Int) {
        self.base = base
        self.batchStride = batchStride
        self.headStride = headStride
        self.rowStride = rowStride
    }

    /// A dense `B,H,N,D` tensor.
    init(contiguous base: UnsafePointer<Float>, heads: Int, rows: Int, d: Int) {
        self.base = base
        rowStride = d
        headStride = rows * d
        batchStride = heads * rows * d
    }

    @inline(__always)
    func row(_ b: Int, _ h: Int, _ n: Int) -> UnsafePointer<Float> {
        base + b * batchStride + h * headStride + n * rowStride
    }
}

/// The writable counterpart of ``TensorView``.
struct MutableTensorView: @unchecked Sendable {
    var base: UnsafeMutablePointer<Float>
    var batchStride: Int
    var headStride: Int
    var rowStride: Int

    init(contiguous base: UnsafeMutablePointer<Float>, heads: Int, rows: Int, d: Int) {
        self.base = base
        rowStride = d
        headStride = rows * d
        batchStride = heads * rows * d
    }

    @inline(__always)
    func row(_ b: Int, _ h: Int, _ n: Int) -> UnsafeMutablePointer<Float> {
        base + b * batchStride + h * headStride + n * rowStride
    }
}
