#if CUDA
import SpargeAttn

/// How the GPU backend's result on one input compares with the CPU path's with the same
/// parameters: block maps and INT8 tensors must be identical, outputs and log-sum-exp close.
public struct CUDAAgreement: Sendable {
    public var label: String
    /// Block-map entries that differ, of all entries.
    public var mapMismatches: Int
    public var mapEntries: Int
    /// INT8 elements of Q and K that differ, of all.
    public var int8Mismatches: Int
    public var int8Elements: Int
    /// Scales of Q and K and the K mean are bitwise equal.
    public var scalesIdentical: Bool
    /// Output of the GPU against the CPU's (fp32 outputs).
    public var cosine: Double
    public var relativeL1: Double
    public var maxAbsoluteError: Double
    public var density: Double
    public var stage2SkippedFraction: Double
    /// Tiles stage 2's filter skipped (or, where skipping cannot change the output, would
    /// skip), on the GPU and on the CPU: the same rule, so the same count, unless the GPU plan
    /// was told not to count them (then at most the CPU's).
    public var skippedTiles: (gpu: Int, cpu: Int) = (0, 0)
    /// The GPU result's ``SpargeAttn/SparseStatistics/skippedTilesCounted``.
    public var gpuSkipsCounted = true
    /// Largest |GPU - CPU| of the per-row log-sum-exp (natural log); rows that are -inf on
    /// one side must be -inf on the other (else infinity), NaN on either side gives NaN.
    public var lseMaxAbsoluteError: Double = 0

    /// The acceptance rule: identical maps, INT8 tensors and filter counts, output cosine >=
    /// `minimumCosine`, log-sum-exp within `maximumLSEError`.
    public func passed(minimumCosine: Double = 0.9999, maximumLSEError: Double = 1e-3) -> Bool {
        mapMismatches == 0 && int8Mismatches == 0 && scalesIdentical && cosine >= minimumCosine
            && lseMaxAbsoluteError <= maximumLSEError
            && (gpuSkipsCounted ? skippedTiles.gpu == skippedTiles.cpu : skippedTiles.gpu <= skippedTiles.cpu)
    }

    /// Largest |a - b| over rows of two log-sum-exp arrays (see ``lseMaxAbsoluteError``).
    public static func lseDifference(_ a: [Float], _ b: [Float]) -> Double {
        guard a.count == b.count else { return .infinity }
        var worst = 0.0
        for (x, y) in zip(a, b) {
            if x.isNaN || y.isNaN { return .nan }
            if x == -.infinity || y == -.infinity {
                if x != y { return .infinity }
                continue
            }
            worst = max(worst, abs(Double(x) - Double(y)))
        }
        return worst
    }
}

public enum CUDAAgreementCheck {
    /// Runs the CPU path and the GPU backend on the same input, parameters and key padding
    /// (`parameters.gpuReproduction.pvNumerics` must be `.fp16` or `.fp8`, the GPU kernels' numerics) and compares them;
    /// `countSkippedTiles` goes to the GPU plan.
    public static func compare(
        label: String, q: AttentionInput, k: AttentionInput, v: AttentionInput, shape: AttentionShape,
        parameters: SpargeParameters, blockMap: BlockMap? = nil, keyPadding: KeyPaddingMask? = nil, device: CUDADevice,
        countSkippedTiles: Bool = true
    ) throws -> CUDAAgreement {
        var cpuOut = [Float](repeating: 0, count: shape.queryElements)
        var gpuOut = [Float](repeating: .nan, count: shape.queryElements)
        let rows = shape.batch * shape.heads * shape.queryLength
        var cpuLSE = [Float](repeating: 0, count: rows), gpuLSE = [Float](repeating: .nan, count: rows)
        let cpu = try cpuOut.withUnsafeMutableBufferPointer { o in
            try cpuLSE.withUnsafeMutableBufferPointer { l in
                try SpargeAttention.sparse(q: q, k: k, v: v, output: AttentionOutput(o), shape: shape, parameters: parameters,
                                           blockMap: blockMap, captureQuantized: true, lse: l, keyPadding: keyPadding)
            }
        }
        let plan = try SpargeCUDAPlan(shape: shape, parameters: parameters, device: device, countSkippedTiles: countSkippedTiles)
        let gpu = try gpuOut.withUnsafeMutableBufferPointer { o in
            try gpuLSE.withUnsafeMutableBufferPointer { l in
                try plan.run(q: q, k: k, v: v, output: AttentionOutput(o), blockMap: blockMap, captureQuantized: true, lse: l, keyPadding: keyPadding)
            }
        }
        // One-shot and GPU results own their maps.
        let cpuBits = cpu.blockMap?.bits ?? [], gpuBits = gpu.blockMap?.bits ?? []
        let mapMismatches = zip(cpuBits, gpuBits).filter { $0 != $1 }.count + abs(cpuBits.count - gpuBits.count)
        var int8Mismatches = 0, int8Elements = 0, scalesIdentical = false
        if let a = cpu.quantized, let b = gpu.quantized {
            int8Mismatches = zip(a.qInt8, b.qInt8).filter { $0 != $1 }.count + zip(a.kInt8, b.kInt8).filter { $0 != $1 }.count
            int8Elements = a.qInt8.count + a.kInt8.count
            func bits(_ x: [Float]) -> [UInt32] { x.map(\.bitPattern) }
            scalesIdentical = bits(a.qScale) == bits(b.qScale) && bits(a.kScale) == bits(b.kScale) && bits(a.kMean) == bits(b.kMean)
        }
        let accuracy = try Accuracy(gpuOut, reference: cpuOut)
        var agreement = CUDAAgreement(
            label: label, mapMismatches: mapMismatches, mapEntries: cpuBits.count,
            int8Mismatches: int8Mismatches, int8Elements: int8Elements, scalesIdentical: scalesIdentical,
            cosine: accuracy.cosine.isNaN ? 0 : accuracy.cosine, relativeL1: accuracy.relativeL1,
            maxAbsoluteError: accuracy.maxAbsoluteError,
            density: gpu.statistics.density, stage2SkippedFraction: gpu.statistics.stage2SkippedFraction,
            lseMaxAbsoluteError: CUDAAgreement.lseDifference(gpuLSE, cpuLSE))
        agreement.skippedTiles = (gpu.statistics.skippedTiles, cpu.statistics.skippedTiles)
        agreement.gpuSkipsCounted = gpu.statistics.skippedTilesCounted
        return agreement
    }

    /// Whether the GPU backend writes an output view with gaps between its rows (token stride
    /// D + 5, as in a view into a wider buffer) as it writes a dense output, bit for bit, and
    /// leaves the gaps as they were (the output's span goes to the device and back whole).
    public static func stridedOutputKeepsGaps(
        q: AttentionInput, k: AttentionInput, v: AttentionInput, shape: AttentionShape,
        parameters: SpargeParameters, device: CUDADevice
    ) throws -> Bool {
        let plan = try SpargeCUDAPlan(shape: shape, parameters: parameters, device: device)
        let d = shape.headDim, stride = d + 5, rows = shape.batch * shape.heads * shape.queryLength
        let wide = TensorLayout(batchStride: shape.heads * shape.queryLength * stride, headStride: shape.queryLength * stride, tokenStride: stride)
        var dense = [Float](repeating: 0, count: shape.queryElements)
        var gapped = [Float](repeating: 42, count: rows * stride)
        try dense.withUnsafeMutableBufferPointer { o in _ = try plan.run(q: q, k: k, v: v, output: AttentionOutput(o)) }
        try gapped.withUnsafeMutableBufferPointer { o in _ = try plan.run(q: q, k: k, v: v, output: AttentionOutput(o, layout: wide)) }
        return (0..<rows).allSatisfy { r in
            (0..<d).allSatisfy { gapped[r * stride + $0].bitPattern == dense[r * d + $0].bitPattern }
                && (d..<stride).allSatisfy { gapped[r * stride + $0] == 42 }
        }
    }
}
#endif
