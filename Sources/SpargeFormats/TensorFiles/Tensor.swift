import SpargeAttn

/// A dense, row-major tensor as stored in a safetensors file: dtype, shape and
/// the raw little-endian bytes.
///
/// Every initializer checks `data.count == elementCount * dtype.byteSize`, so
/// the typed accessors can never read out of bounds.
public struct Tensor: Sendable, Hashable {
    /// Element type of `data`.
    public let dtype: TensorDType
    /// Dimensions, outermost first; `[]` is a scalar (one element).
    public let shape: [Int]
    /// Raw element bytes, little-endian, row-major.
    public let data: [UInt8]
    /// Product of `shape` (1 for a scalar).
    public let elementCount: Int

    /// Wraps raw little-endian bytes after checking them against the shape.
    /// - Throws: `TensorFileError.invalidShape`, `.elementCountOverflow` or `.sizeMismatch`.
    public init(dtype: TensorDType, shape: [Int], data: [UInt8]) throws {
        let count = try Self.elementCount(of: shape, tensor: nil)
        let expected = try Self.byteCount(elements: count, dtype: dtype, shape: shape, tensor: nil)
        guard data.count == expected else {
            throw TensorFileError.sizeMismatch(tensor: nil, dtype: dtype, shape: shape, expectedBytes: expected, actualBytes: data.count)
        }
        self.init(validatedDType: dtype, shape: shape, data: data, elementCount: count)
    }

    /// Used by the parser, which has already validated everything.
    init(validatedDType dtype: TensorDType, shape: [Int], data: [UInt8], elementCount: Int) {
        self.dtype = dtype
        self.shape = shape
        self.data = data
        self.elementCount = elementCount
    }

    /// Number of bytes in `data`.
    public var byteCount: Int { data.count }

    // MARK: Validation helpers

    /// Product of the shape with overflow and sign checks.
    static func elementCount(of shape: [Int], tensor: String?) throws -> Int {
        var count = 1
        for (axis, dim) in shape.enumerated() {
            guard dim >= 0 else {
                throw TensorFileError.invalidShape(tensor: tensor, reason: "dimension \(axis) is \(dim)")
            }
            let (product, overflow) = count.multipliedReportingOverflow(by: dim)
            guard !overflow else { throw TensorFileError.elementCountOverflow(tensor: tensor, shape: shape) }
            count = product
        }
        return count
    }

    static func byteCount(elements: Int, dtype: TensorDType, shape: [Int], tensor: String?) throws -> Int {
        let (bytes, overflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else { throw TensorFileError.elementCountOverflow(tensor: tensor, shape: shape) }
        return bytes
    }

    private static func checkedCount(_ actual: Int, dtype: TensorDType, shape: [Int]) throws -> Int {
        let expected = try elementCount(of: shape, tensor: nil)
        _ = try byteCount(elements: expected, dtype: dtype, shape: shape, tensor: nil)
        guard actual == expected else {
            throw TensorFileError.valueCountMismatch(dtype: dtype, shape: shape, expected: expected, actual: actual)
        }
        return expected
    }
}

// MARK: - Typed constructors

extension Tensor {
    /// An F32 tensor. - Throws: if `floats.count` differs from the shape's product.
    public init(floats: [Float], shape: [Int]) throws {
        let n = try Self.checkedCount(floats.count, dtype: .float32, shape: shape)
        self.init(validatedDType: .float32, shape: shape, data: LittleEndianBytes.encode(floats.map(\.bitPattern)), elementCount: n)
    }

    /// An F64 tensor. - Throws: if `doubles.count` differs from the shape's product.
    public init(doubles: [Double], shape: [Int]) throws {
        let n = try Self.checkedCount(doubles.count, dtype: .float64, shape: shape)
        self.init(validatedDType: .float64, shape: shape, data: LittleEndianBytes.encode(doubles.map(\.bitPattern)), elementCount: n)
    }

    /// An F16 tensor, rounding each value to nearest-even FP16 (±65504 max, beyond is ±inf).
    public init(float16 values: [Float], shape: [Int]) throws {
        let n = try Self.checkedCount(values.count, dtype: .float16, shape: shape)
        self.init(validatedDType: .float16, shape: shape, data: HalfConversion.float16Bytes(from: values), elementCount: n)
    }

    /// A BF16 tensor, rounding each value to nearest-even BF16.
    public init(bfloat16 values: [Float], shape: [Int]) throws {
        let n = try Self.checkedCount(values.count, dtype: .bfloat16, shape: shape)
        self.init(validatedDType: .bfloat16, shape: shape, data: HalfConversion.bfloat16Bytes(from: values), elementCount: n)
    }

    /// An I8 tensor.
    public init(int8s: [Int8], shape: [Int]) throws {
        let n = try Self.checkedCount(int8s.count, dtype: .int8, shape: shape)
        self.init(validatedDType: .int8, shape: shape, data: LittleEndianBytes.encode(int8s), elementCount: n)
    }

    /// A U8 tensor.
    public init(uint8s: [UInt8], shape: [Int]) throws {
        let n = try Self.checkedCount(uint8s.count, dtype: .uint8, shape: shape)
        self.init(validatedDType: .uint8, shape: shape, data: uint8s, elementCount: n)
    }

    /// An I16 tensor.
    public init(int16s: [Int16], shape: [Int]) throws {
        let n = try Self.checkedCount(int16s.count, dtype: .int16, shape: shape)
        self.init(validatedDType: .int16, shape: shape, data: LittleEndianBytes.encode(int16s), elementCount: n)
    }

    /// An I32 tensor.
    public init(int32s: [Int32], shape: [Int]) throws {
        let n = try Self.checkedCount(int32s.count, dtype: .int32, shape: shape)
        self.init(validatedDType: .int32, shape: shape, data: LittleEndianBytes.encode(int32s), elementCount: n)
    }

    /// An I64 tensor.
    public init(int64s: [Int64], shape: [Int]) throws {
        let n = try Self.checkedCount(int64s.count, dtype: .int64, shape: shape)
        self.init(validatedDType: .int64, shape: shape, data: LittleEndianBytes.encode(int64s), elementCount: n)
    }

    /// A BOOL tensor (stored as bytes 0 and 1, like PyTorch).
    public init(bools: [Bool], shape: [Int]) throws {
        let n = try Self.checkedCount(bools.count, dtype: .bool, shape: shape)
        self.init(validatedDType: .bool, shape: shape, data: bools.map { $0 ? 1 : 0 }, elementCount: n)
    }
}

// MARK: - Typed accessors

extension Tensor {
    /// All elements converted to `Float`, whatever the dtype.
    ///
    /// F64 and large I32/I64 values are rounded to the nearest `Float`; BOOL gives 0 or 1.
    /// Never throws today; `throws` leaves room for dtypes without a `Float` reading.
    public func floats() throws -> [Float] {
        data.withUnsafeBytes { raw in
            switch dtype {
            case .float32:
                return LittleEndianBytes.decode(raw, as: UInt32.self).map { Float(bitPattern: $0) }
            case .float16:
                return HalfConversion.floats(fromFloat16Bytes: raw)
            case .bfloat16:
                return HalfConversion.floats(fromBFloat16Bytes: raw)
            case .float64:
                return LittleEndianBytes.decode(raw, as: UInt64.self).map { Float(Double(bitPattern: $0)) }
            case .int8:
                return LittleEndianBytes.decode(raw, as: Int8.self).map { Float($0) }
            case .uint8:
                return raw.map { Float($0) }
            case .int16:
                return LittleEndianBytes.decode(raw, as: Int16.self).map { Float($0) }
            case .int32:
                return LittleEndianBytes.decode(raw, as: Int32.self).map { Float($0) }
            case .int64:
                return LittleEndianBytes.decode(raw, as: Int64.self).map { Float($0) }
            case .bool:
                return raw.map { $0 == 0 ? 0 : 1 }
            }
        }
    }

    /// All elements as `Double`: exact for every dtype except I64 beyond 2^53.
    public func doubles() throws -> [Double] {
        if dtype == .float64 {
            return data.withUnsafeBytes { LittleEndianBytes.decode($0, as: UInt64.self).map { Double(bitPattern: $0) } }
        }
        if dtype == .int64 {
            return try int64s().map { Double($0) }
        }
        return try floats().map { Double($0) }
    }

    /// The values of an I8 tensor (for example quantized Q/K).
    /// - Throws: `TensorFileError.dtypeMismatch` for any other dtype, since conversion would be lossy.
    public func int8s() throws -> [Int8] {
        try require(.int8, by: "int8s()")
        return data.map { Int8(bitPattern: $0) }
    }

    /// The bytes of a U8 or BOOL tensor (for example block masks).
    /// - Throws: `TensorFileError.dtypeMismatch` for any other dtype.
    public func uint8s() throws -> [UInt8] {
        try require(.uint8, .bool, by: "uint8s()")
        return data
    }

    /// The values of a BOOL or U8 tensor, nonzero meaning true.
    /// - Throws: `TensorFileError.dtypeMismatch` for any other dtype.
    public func bools() throws -> [Bool] {
        try require(.bool, .uint8, by: "bools()")
        return data.map { $0 != 0 }
    }

    /// The values of an I16, I8, U8 or BOOL tensor (lossless widening only).
    /// - Throws: `TensorFileError.dtypeMismatch` for any other dtype.
    public func int16s() throws -> [Int16] {
        try require(.int16, .int8, .uint8, .bool, by: "int16s()")
        return widened(Int16.self)
    }

    /// The values of an I32, I16, I8, U8 or BOOL tensor (lossless widening only).
    /// - Throws: `TensorFileError.dtypeMismatch` for floating-point or I64 tensors.
    public func int32s() throws -> [Int32] {
        try require(.int32, .int16, .int8, .uint8, .bool, by: "int32s()")
        return widened(Int32.self)
    }

    /// The values of any integer or BOOL tensor as `Int64` (lossless).
    /// - Throws: `TensorFileError.dtypeMismatch` for floating-point tensors.
    public func int64s() throws -> [Int64] {
        try require(.int64, .int32, .int16, .int8, .uint8, .bool, by: "int64s()")
        return widened(Int64.self)
    }

    private func require(_ accepted: TensorDType..., by accessor: String) throws {
        guard accepted.contains(dtype) else {
            throw TensorFileError.dtypeMismatch(requested: accessor, actual: dtype, accepted: accepted)
        }
    }

    /// Integer dtypes widened to `T`; callers have checked that `T` holds every value.
    private func widened<T: FixedWidthInteger>(_: T.Type) -> [T] {
        data.withUnsafeBytes { raw in
            switch dtype {
            case .int8: return raw.map { T(Int8(bitPattern: $0)) }
            case .uint8: return raw.map { T($0) }
            case .bool: return raw.map { $0 == 0 ? 0 : 1 }
            case .int16: return LittleEndianBytes.decode(raw, as: Int16.self).map { T($0) }
            case .int32: return LittleEndianBytes.decode(raw, as: Int32.self).map { T($0) }
            case .int64: return LittleEndianBytes.decode(raw, as: Int64.self).map { T($0) }
            case .float32, .float16, .bfloat16, .float64: return []
            }
        }
    }
}
