/// Where the rows of a `B,H,N,D` tensor live: strides in elements for batch, head and token;
/// channels are contiguous (stride 1).
public struct TensorLayout: Sendable, Hashable {
    /// Elements between consecutive batch entries.
    public var batchStride: Int
    /// Elements between consecutive heads.
    public var headStride: Int
    /// Elements between consecutive tokens (at least `headDim` when rows must not overlap).
    public var tokenStride: Int

    /// A layout from its three strides, in elements (validated against each call's shape).
    public init(batchStride: Int, headStride: Int, tokenStride: Int) {
        self.batchStride = batchStride
        self.headStride = headStride
        self.tokenStride = tokenStride
    }

    /// Dense `B,H,N,D` ("HND", the GPU code's default).
    public static func hnd(heads: Int, tokens: Int, headDim: Int) -> TensorLayout {
        TensorLayout(batchStride: heads * tokens * headDim, headStride: tokens * headDim, tokenStride: headDim)
    }

    /// Dense `B,N,H,D` ("NHD", what most model code produces before transposing).
    public static func nhd(heads: Int, tokens: Int, headDim: Int) -> TensorLayout {
        TensorLayout(batchStride: tokens * heads * headDim, headStride: headDim, tokenStride: heads * headDim)
    }

    /// Largest element offset touched by `batch x heads x tokens x headDim`, or nil if a
    /// stride is negative or the offset overflows.
    func lastOffset(batch: Int, heads: Int, tokens: Int, headDim: Int) -> Int? {
        guard batchStride >= 0, headStride >= 0, tokenStride >= 0 else { return nil }
        // Unrolled: an array of (count, stride) pairs would allocate on every call.
        func add(_ total: Int?, _ n: Int, _ s: Int) -> Int? {
            guard let total else { return nil }
            let (p, o1) = (n - 1).multipliedReportingOverflow(by: s)
            let (t, o2) = total.addingReportingOverflow(p)
            return o1 || o2 ? nil : t
        }
        return add(add(add(headDim - 1, batch, batchStride), heads, headStride), tokens, tokenStride)
    }
}

/// A caller-owned input tensor: a buffer of `Float`, `Float16` or ``BFloat16`` and its layout.
/// Read in place, never copied (fp16/bf16 V is widened once per call into the workspace).
/// Tensors held in Swift arrays need no pointer: pass the array, or a ``TensorArray`` view of
/// it, to the calls that take an ``AttentionTensor``.
public struct AttentionInput: @unchecked Sendable {
    let base: UnsafeRawPointer
    let count: Int
    let type: ElementType
    let layout: TensorLayout?
    /// Where this view starts in a ``TensorArray``'s array (nil for a caller's pointer).
    var placement: ViewPlacement? = nil

    /// fp32 elements; `layout` nil means dense HND for the call's shape.
    public init(_ buffer: UnsafeBufferPointer<Float>, layout: TensorLayout? = nil) {
        self.init(start: buffer.baseAddress.map { UnsafeRawPointer($0) }, count: buffer.count, type: .float32, layout: layout)
    }

    /// fp16 elements.
    public init(_ buffer: UnsafeBufferPointer<Float16>, layout: TensorLayout? = nil) {
        self.init(start: buffer.baseAddress.map { UnsafeRawPointer($0) }, count: buffer.count, type: .float16, layout: layout)
    }

    /// bf16 elements.
    public init(_ buffer: UnsafeBufferPointer<BFloat16>, layout: TensorLayout? = nil) {
        self.init(start: buffer.baseAddress.map { UnsafeRawPointer($0) }, count: buffer.count, type: .bfloat16, layout: layout)
    }

    /// A view of existing memory (a slice of another input).
    init(base: UnsafeRawPointer, count: Int, type: ElementType, layout: TensorLayout?) {
        self.base = base
        self.count = count
        self.type = type
        self.layout = layout
    }

    /// An empty buffer has no base address; any non-null one will do (nothing is read).
    private init(start: UnsafeRawPointer?, count: Int, type: ElementType, layout: TensorLayout?) {
        base = start ?? UnsafeRawPointer(bitPattern: 16)!
        self.count = count
        self.type = type
        self.layout = layout
    }
}

/// A caller-owned output tensor (`B,H,Nq,D` of `Float`, `Float16` or ``BFloat16``).
public struct AttentionOutput: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let count: Int
    let type: ElementType
    let layout: TensorLayout?

    /// fp32 elements; `layout` nil means dense HND for the call's shape.
    public init(_ buffer: UnsafeMutableBufferPointer<Float>, layout: TensorLayout? = nil) {
        self.init(start: buffer.baseAddress.map { UnsafeMutableRawPointer($0) }, count: buffer.count, type: .float32, layout: layout)
    }

    /// fp16 elements (fp32 results rounded to nearest even).
    public init(_ buffer: UnsafeMutableBufferPointer<Float16>, layout: TensorLayout? = nil) {
        self.init(start: buffer.baseAddress.map { UnsafeMutableRawPointer($0) }, count: buffer.count, type: .float16, layout: layout)
    }

    /// bf16 elements (fp32 results rounded to nearest even).
    public init(_ buffer: UnsafeMutableBufferPointer<BFloat16>, layout: TensorLayout? = nil) {
        self.init(start: buffer.baseAddress.map { UnsafeMutableRawPointer($0) }, count: buffer.count, type: .bfloat16, layout: layout)
    }

    /// A view of existing memory (a slice of another output).
    init(base: UnsafeMutableRawPointer, count: Int, type: ElementType, layout: TensorLayout?) {
        self.base = base
        self.count = count
        self.type = type
        self.layout = layout
    }

    /// An empty buffer has no base address; any non-null one will do (nothing is written).
    private init(start: UnsafeMutableRawPointer?, count: Int, type: ElementType, layout: TensorLayout?) {
        base = start ?? UnsafeMutableRawPointer(bitPattern: 16)!
        self.count = count
        self.type = type
        self.layout = layout
    }
}
