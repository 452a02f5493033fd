// The safe layer over AttentionInput/AttentionOutput: tensors held in Swift arrays (no
// pointers, no closures at the call site). Each call borrows the arrays' storage with
// withUnsafeBufferPointer for its duration, so nothing is copied.

/// An element type the attention calls read and write: `Float`, `Float16` and ``BFloat16``.
///
/// The requirements turn a buffer of the type into the pointer API's ``AttentionInput`` and
/// ``AttentionOutput``; the array calls use them, you need not.
public protocol AttentionElement: BitwiseCopyable, Sendable {
    /// The pointer-API input over `buffer` with `layout` (nil: dense `B,H,N,D`).
    static func attentionInput(_ buffer: UnsafeBufferPointer<Self>, layout: TensorLayout?) -> AttentionInput
    /// The pointer-API output over `buffer` with `layout` (nil: dense `B,H,N,D`).
    static func attentionOutput(_ buffer: UnsafeMutableBufferPointer<Self>, layout: TensorLayout?) -> AttentionOutput
}

extension Float: AttentionElement {
    /// fp32 elements read in place.
    public static func attentionInput(_ buffer: UnsafeBufferPointer<Float>, layout: TensorLayout?) -> AttentionInput {
        AttentionInput(buffer, layout: layout)
    }
    /// fp32 results.
    public static func attentionOutput(_ buffer: UnsafeMutableBufferPointer<Float>, layout: TensorLayout?) -> AttentionOutput {
        AttentionOutput(buffer, layout: layout)
    }
}

extension Float16: AttentionElement {
    /// fp16 elements read in place (widened to fp32 for compute).
    public static func attentionInput(_ buffer: UnsafeBufferPointer<Float16>, layout: TensorLayout?) -> AttentionInput {
        AttentionInput(buffer, layout: layout)
    }
    /// fp16 results (fp32 rounded to nearest even).
    public static func attentionOutput(_ buffer: UnsafeMutableBufferPointer<Float16>, layout: TensorLayout?) -> AttentionOutput {
        AttentionOutput(buffer, layout: layout)
    }
}

extension BFloat16: AttentionElement {
    /// bf16 elements read in place (widened to fp32 for compute).
    public static func attentionInput(_ buffer: UnsafeBufferPointer<BFloat16>, layout: TensorLayout?) -> AttentionInput {
        AttentionInput(buffer, layout: layout)
    }
    /// bf16 results (fp32 rounded to nearest even).
    public static func attentionOutput(_ buffer: UnsafeMutableBufferPointer<BFloat16>, layout: TensorLayout?) -> AttentionOutput {
        AttentionOutput(buffer, layout: layout)
    }
}

/// A tensor the array calls read in place: `[E]`, `ArraySlice<E>` and `ContiguousArray<E>`
/// of an ``AttentionElement`` (dense `B,H,N,D` from the first element), or a ``TensorArray``
/// (an offset and a ``TensorLayout`` into one of those, such as the K part of a fused QKV
/// buffer).
public protocol AttentionTensor {
    /// Calls `body` with the tensor as the pointer API's input, valid only inside `body`.
    func withAttentionInput<R>(_ body: (AttentionInput) throws -> R) rethrows -> R
}

extension Array: AttentionTensor where Element: AttentionElement {
    /// The array as a dense `B,H,N,D` input.
    public func withAttentionInput<R>(_ body: (AttentionInput) throws -> R) rethrows -> R {
        try withUnsafeBufferPointer { try body(Element.attentionInput($0, layout: nil)) }
    }
}

extension ArraySlice: AttentionTensor where Element: AttentionElement {
    /// The slice as a dense `B,H,N,D` input starting at its first element.
    public func withAttentionInput<R>(_ body: (AttentionInput) throws -> R) rethrows -> R {
        try withUnsafeBufferPointer { try body(Element.attentionInput($0, layout: nil)) }
    }
}

extension ContiguousArray: AttentionTensor where Element: AttentionElement {
    /// The array as a dense `B,H,N,D` input.
    public func withAttentionInput<R>(_ body: (AttentionInput) throws -> R) rethrows -> R {
        try withUnsafeBufferPointer { try body(Element.attentionInput($0, layout: nil)) }
    }
}

/// A tensor inside a Swift array: the array (held, not copied), the element where the tensor
/// starts and its ``TensorLayout``. Views of one fused buffer differ only in their offsets:
///
/// ```swift
/// // A fused QKV projection [1, N, 3, H, D] of fp16: q at 0, k at H*D, v at 2*H*D.
/// let fused = TensorLayout(batchStride: n * 3 * h * d, headStride: d, tokenStride: 3 * h * d)
/// let q = TensorArray(qkv, offset: 0, layout: fused)
/// let k = TensorArray(qkv, offset: h * d, layout: fused)
/// let v = TensorArray(qkv, offset: 2 * h * d, layout: fused)
/// ```
///
/// Making one checks nothing; each call checks once that the last element the layout reaches
/// from `offset` lies inside the array, and otherwise throws
/// ``SpargeError/viewOutOfBounds(name:offset:needed:actual:)`` naming the tensor (`q`, `k`,
/// `v`), the elements it needs and the elements the array holds.
public struct TensorArray<Element: AttentionElement>: AttentionTensor, Sendable {
    enum Storage: Sendable {
        case array([Element])
        case slice(ArraySlice<Element>)
        case contiguous(ContiguousArray<Element>)
    }

    let storage: Storage
    /// The element where the tensor starts (counted from the first element of the array or slice).
    public let offset: Int
    /// The strides of the tensor; nil means dense `B,H,N,D` for each call's shape.
    public let layout: TensorLayout?

    /// A tensor in `elements` from `offset` on.
    public init(_ elements: [Element], offset: Int = 0, layout: TensorLayout? = nil) {
        self.init(storage: .array(elements), offset: offset, layout: layout)
    }

    /// A tensor in `elements` from `offset` on (counted from the slice's first element, not
    /// from its `startIndex`).
    public init(_ elements: ArraySlice<Element>, offset: Int = 0, layout: TensorLayout? = nil) {
        self.init(storage: .slice(elements), offset: offset, layout: layout)
    }

    /// A tensor in `elements` from `offset` on.
    public init(_ elements: ContiguousArray<Element>, offset: Int = 0, layout: TensorLayout? = nil) {
        self.init(storage: .contiguous(elements), offset: offset, layout: layout)
    }

    private init(storage: Storage, offset: Int, layout: TensorLayout?) {
        self.storage = storage
        self.offset = offset
        self.layout = layout
    }

    /// Elements of the whole array or slice.
    public var bufferCount: Int {
        switch storage {
        case .array(let a): return a.count
        case .slice(let s): return s.count
        case .contiguous(let c): return c.count
        }
    }

    /// The view from ``offset`` with ``layout``, valid only inside `body`; a call checks its
    /// bounds against the whole buffer.
    public func withAttentionInput<R>(_ body: (AttentionInput) throws -> R) rethrows -> R {
        switch storage {
        case .array(let a): return try a.withUnsafeBufferPointer { try view($0, body) }
        case .slice(let s): return try s.withUnsafeBufferPointer { try view($0, body) }
        case .contiguous(let c): return try c.withUnsafeBufferPointer { try view($0, body) }
        }
    }

    private func view<R>(_ buffer: UnsafeBufferPointer<Element>, _ body: (AttentionInput) throws -> R) rethrows -> R {
        // An offset outside the buffer leaves an empty view; the call's check reports it with the tensor's name.
        let start = Swift.min(Swift.max(offset, 0), buffer.count)
        var input = Element.attentionInput(UnsafeBufferPointer(rebasing: buffer[start...]), layout: layout)
        input.placement = ViewPlacement(offset: offset, bufferCount: buffer.count)
        return try body(input)
    }
}

/// Where a ``TensorArray``'s view starts in its array, for the bounds check and its message.
struct ViewPlacement {
    var offset: Int
    var bufferCount: Int
}

extension Array where Element: AttentionElement {
    /// The array as the pointer API's output with `layout`, valid only inside `body` (no copy
    /// when the array is uniquely referenced).
    mutating func withAttentionOutput<R>(layout: TensorLayout?, _ body: (AttentionOutput) throws -> R) rethrows -> R {
        try withUnsafeMutableBufferPointer { try body(Element.attentionOutput($0, layout: layout)) }
    }
}
