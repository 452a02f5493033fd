import SpargeSIMD

// The GPU emulations round some inputs to fp16 as the authors' kernels take them: Q and K with
// `gpuRounding`, V with fp16 P.V. A value beyond fp16's range (|x| >= 65520 rounds to
// infinity) could never have reached the GPU kernel, and its emulation would turn it into
// inf / NaN outputs; the call throws before anything is written instead.

/// Which inputs a call rounds to fp16.
struct HalfRoundedInputs {
    var queriesAndKeys = false
    var values = false

    static let none = HalfRoundedInputs()

    init(queriesAndKeys: Bool = false, values: Bool = false) {
        self.queriesAndKeys = queriesAndKeys
        self.values = values
    }

    /// What `p` rounds.
    init(_ p: SpargeParameters) {
        self.init(queriesAndKeys: p.gpuReproduction.gpuRounding, values: p.gpuReproduction.pvNumerics == .fp16)
    }

    /// The reason, for the error message.
    static func reason(name: String) -> String {
        name == "v" ? "pvNumerics .fp16 rounds V to fp16 as the GPU kernel's P.V does"
            : "gpuRounding rounds Q and K to fp16 as the GPU kernel's inputs are"
    }
}

/// The first element of a view whose magnitude rounds to infinity in fp16 (NaN ignored: the
/// non-finite policy handles it), rows widened to fp32 into `temp`.
func firstBeyondHalfRange(_ v: TensorView, batch: Int, heads: Int, tokens: Int, d: Int,
                          temp: UnsafeMutablePointer<Float>) -> (index: Int, value: Float)? {
    firstFlaggedElement(v, batch: batch, heads: heads, tokens: tokens, d: d, temp: temp) { row, d in
        guard roundToHalf(absoluteMax(row, count: d)).isInfinite else { return nil }
        return (0..<d).first { roundToHalf(row[$0]).isInfinite }
    }
}
