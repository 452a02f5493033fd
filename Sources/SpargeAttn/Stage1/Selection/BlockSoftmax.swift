import Foundation

// Stage 1, step 4: the softmax over the key blocks of one row of compressed scores, `P_hat`.

/// Turns `count` scores (maximum `rowMax`) into probabilities in place. A row whose scores are
/// all -inf gets zeros: every column it could use is forced later (step 6), so the choice
/// made from it does not matter. The scores before `first` must be -inf (key blocks before
/// the sliding window): they become 0 without an exponential, which changes no bit of the sum.
@inline(__always)
func blockSoftmax(_ p: UnsafeMutablePointer<Float>, count nk: Int, rowMax: Float, gpuRounding: Bool, first: Int = 0) {
    if rowMax == -.infinity {
        for j in 0..<nk { p[j] = 0 }
        return
    }
    for j in 0..<first { p[j] = 0 }
    var sum: Float = 0
    for j in first..<nk {
        let e = Foundation.exp(p[j] - rowMax)
        p[j] = e
        sum += e
    }
    for j in first..<nk {
        let x = p[j] / sum
        p[j] = gpuRounding ? roundToHalf(x) : x
    }
}
