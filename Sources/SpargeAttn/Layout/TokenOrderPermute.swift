// Moving rows between the caller's order and a token order, for callers that reorder tensors
// themselves (a GPU backend, a framework's own attention). The entry points that take a
// `tokenOrder:` do this internally and need none of it.

extension TokenOrder {
    /// Gathers the rows of `source` into token order in `destination`: row `p` of each group
    /// becomes the caller's row ``permutation``[`p`].
    ///
    /// A buffer is groups of ``count`` rows of `rowWidth` elements, in order: dense `B,H,N,D`
    /// (HND) is `B * H` groups with `rowWidth` `D`; dense `B,N,H,D` (NHD, or a fused
    /// `B,N,3,H,D` QKV buffer) is `B` groups with `rowWidth` `H * D` (`3 * H * D`), so a token's
    /// heads move together. Any element type (`Float`, `Float16`, ``BFloat16``, ...) works.
    ///
    /// Throws (before writing anything) ``SpargeError/invalidShape(_:)`` when `rowWidth < 1` or
    /// `source.count` is not a multiple of `count * rowWidth`, ``SpargeError/bufferTooSmall(name:expected:actual:)``
    /// when `destination` is shorter than `source`, and ``SpargeError/invalidParameter(_:)`` when
    /// the two overlap. Allocates nothing.
    public func permute<Element>(_ source: UnsafeBufferPointer<Element>, into destination: UnsafeMutableBufferPointer<Element>,
                                 rowWidth: Int) throws {
        let groups = try checkedGroups(source.count, destination: destination.count, rowWidth: rowWidth)
        try Self.checkDisjoint(source, destination)
        guard let src = source.baseAddress, let dst = destination.baseAddress else { return }
        Self.gather(src, into: dst, rows: forward, groups: groups, tokens: count, rowWidth: rowWidth, initialize: false)
    }

    /// The inverse of ``permute(_:into:rowWidth:)``: puts rows in token order (an attention
    /// output) back into the caller's order. Same buffer shapes and errors.
    public func unpermute<Element>(_ source: UnsafeBufferPointer<Element>, into destination: UnsafeMutableBufferPointer<Element>,
                                   rowWidth: Int) throws {
        let groups = try checkedGroups(source.count, destination: destination.count, rowWidth: rowWidth)
        try Self.checkDisjoint(source, destination)
        guard let src = source.baseAddress, let dst = destination.baseAddress else { return }
        Self.gather(src, into: dst, rows: backward, groups: groups, tokens: count, rowWidth: rowWidth, initialize: false)
    }

    /// `x` (groups of ``count`` rows of `rowWidth` elements) in token order; see
    /// ``permute(_:into:rowWidth:)`` for the layouts and the errors.
    public func permuted<Element>(_ x: [Element], rowWidth: Int) throws -> [Element] {
        try gathered(x, rows: forward, rowWidth: rowWidth)
    }

    /// `x` (in token order) back in the caller's order; the inverse of ``permuted(_:rowWidth:)``.
    public func unpermuted<Element>(_ x: [Element], rowWidth: Int) throws -> [Element] {
        try gathered(x, rows: backward, rowWidth: rowWidth)
    }

    // MARK: - Implementation

    private func gathered<Element>(_ x: [Element], rows: [Int32], rowWidth: Int) throws -> [Element] {
        let groups = try checkedGroups(x.count, destination: x.count, rowWidth: rowWidth)
        if rows.isEmpty || x.isEmpty { return x }   // the identity
        return [Element](unsafeUninitializedCapacity: x.count) { y, initialized in
            x.withUnsafeBufferPointer {
                Self.gather($0.baseAddress!, into: y.baseAddress!, rows: rows, groups: groups, tokens: count,
                            rowWidth: rowWidth, initialize: true)
            }
            initialized = x.count
        }
    }

    /// The number of groups of `count x rowWidth` elements in `elements`, or a thrown error.
    private func checkedGroups(_ elements: Int, destination: Int, rowWidth: Int) throws -> Int {
        guard rowWidth >= 1 else {
            throw SpargeError.invalidShape("rowWidth is \(rowWidth); give the elements of one token's row (D for HND, H * D for NHD), at least 1")
        }
        let (group, overflow) = count.multipliedReportingOverflow(by: rowWidth)
        guard !overflow, elements % group == 0 else {
            throw SpargeError.invalidShape(
                "the buffer holds \(elements) elements, not a whole number of groups of count x rowWidth = \(count) x \(rowWidth); the token order must cover exactly N tokens and rowWidth be one token's row")
        }
        guard destination >= elements else {
            throw SpargeError.bufferTooSmall(name: "destination", expected: elements, actual: destination)
        }
        return elements / group
    }

    private static func checkDisjoint<Element>(_ a: UnsafeBufferPointer<Element>, _ b: UnsafeMutableBufferPointer<Element>) throws {
        guard let pa = a.baseAddress, let pb = b.baseAddress, !a.isEmpty, !b.isEmpty else { return }
        let a0 = UnsafeRawPointer(pa), a1 = UnsafeRawPointer(pa + a.count)
        let b0 = UnsafeRawPointer(pb), b1 = UnsafeRawPointer(pb + b.count)
        if a0 < b1 && b0 < a1 {
            throw SpargeError.invalidParameter("the source and destination buffers overlap; permute into a separate buffer")
        }
    }

    /// `y[g][i] = x[g][rows[i]]` for every group `g` (a copy when `rows` is empty: the identity).
    static func gather<Element>(_ x: UnsafePointer<Element>, into y: UnsafeMutablePointer<Element>, rows: [Int32],
                                groups: Int, tokens: Int, rowWidth: Int, initialize: Bool) {
        let group = tokens * rowWidth
        rows.withUnsafeBufferPointer { rows in
            for g in 0..<groups {
                let src = x + g * group, dst = y + g * group
                for i in 0..<tokens {
                    let from = src + (rows.isEmpty ? i : Int(rows[i])) * rowWidth, to = dst + i * rowWidth
                    if initialize { to.initialize(from: from, count: rowWidth) } else { to.update(from: from, count: rowWidth) }
                }
            }
        }
    }
}
