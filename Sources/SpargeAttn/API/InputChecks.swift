import SpargeSIMD

/// Size and value checks shared by the entry points.
enum InputChecks {
    static func size(_ name: String, _ count: Int, _ expected: Int) throws {
        if count < expected { throw SpargeError.bufferTooSmall(name: name, expected: expected, actual: count) }
    }

    static func finite(_ name: String, _ x: UnsafeBufferPointer<Float>, count: Int, policy: NonFinitePolicy) throws {
        guard policy == .reject, let base = x.baseAddress else { return }
        if let i = firstNonFinite(base, count: count) {
            throw SpargeError.nonFiniteInput(name: name, index: i, value: base[i])
        }
    }
}
