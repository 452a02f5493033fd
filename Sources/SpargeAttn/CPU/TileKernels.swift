import SpargeSIMD
#if arch(x86_64)
import SpargeSIMDAVX2
import SpargeSIMDAVX512
#endif

// The kernel sets as values of one protocol type. Each compiled set (SpargeSIMD,
// SpargeSIMDAVX2, SpargeSIMDAVX512) declares the same static entry points in its own
// `KernelSet` enum, so the conformances below need no bodies.

/// The tile kernels every kernel set provides (see SpargeSIMD's kernel files).
protocol TileKernels: Sendable {
    static var name: String { get }
    static var isSpecialized: Bool { get }
    static var lanes: Int { get }
    static func multiplyAddLoop(steps: Int, seed: Float) -> Float
    static var scoreRowPadding: Int32 { get }
    static func packScoreQueries(_ q8: UnsafePointer<Int8>, rows: Int, d: Int, rowStride: Int, rowsPad: Int,
                                 into packed: UnsafeMutablePointer<Int32>)
    static func packScoreKeys(_ k8: UnsafePointer<Int8>, rows: Int, d: Int, stride: Int, columns: Int,
                              into packed: UnsafeMutablePointer<Int16>)
    static func int8ScoreTile(q: UnsafePointer<Int32>, qStride: Int, rows: Int, k: UnsafePointer<Int16>, columns: Int,
                              pairs: Int, scale: Float, terms: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>, outStride: Int)
    static func floatScoreTile(q: UnsafePointer<Float>, qStride: Int, rows: Int, kT: UnsafePointer<Float>, columns: Int,
                               depth: Int, out: UnsafeMutablePointer<Float>, outStride: Int)
    static func keyRowScoreTile(q: UnsafePointer<Float>, qStride: Int, rows: Int, k: UnsafePointer<Float>, kStride: Int,
                                count: Int, depth: Int, out: UnsafeMutablePointer<Float>, outStride: Int)
    static func halfKeyRowScoreTile(q: UnsafePointer<Float>, qStride: Int, rows: Int, k: UnsafePointer<UInt16>, kStride: Int,
                                    count: Int, depth: Int, bfloat16: Bool, out: UnsafeMutablePointer<Float>, outStride: Int)
    static func channelMajorScores(q: UnsafePointer<Float>, qStride: Int, rows: Int, table: UnsafePointer<Float>, tableStride: Int,
                                   channels: Int, columns: Int, out: UnsafeMutablePointer<Float>, outStride: Int)
    static func rowTimesColumns(_ x: UnsafePointer<Float>, kT: UnsafePointer<Float>, columns: Int, depth: Int,
                                out: UnsafeMutablePointer<Float>)
    static func quantizeProbabilityRows(_ p: UnsafePointer<Float>, stride: Int, rows: Int, columns: Int,
                                        into out: UnsafeMutablePointer<Int32>, pairStride: Int, scales: UnsafeMutablePointer<Float>)
    static func exponentiateQuantizeRows(_ x: UnsafeMutablePointer<Float>, stride: Int, rows: Int, columns: Int,
                                         shifts: UnsafePointer<Float>, sums: UnsafeMutablePointer<Float>,
                                         into out: UnsafeMutablePointer<Int32>, pairStride: Int, scales: UnsafeMutablePointer<Float>)
    static func quantizeValueBlock(_ v: UnsafePointer<Float>, stride: Int, keys: Int, columns: Int,
                                   into out: UnsafeMutablePointer<Int16>, steps: UnsafeMutablePointer<Float>)
    static func accumulatePairProducts(p: UnsafePointer<Int32>, pStride: Int, rows: Int, v: UnsafePointer<Int16>, columns: Int,
                                       pairs: Int, rowScales: UnsafePointer<Float>, columnScales: UnsafePointer<Float>,
                                       o: UnsafeMutablePointer<Float>, oStride: Int)
    static func accumulateProbabilityValue(p: UnsafePointer<Float>, pStride: Int, rows: Int, count: Int,
                                           v: UnsafePointer<Float>, vStride: Int, width: Int,
                                           o: UnsafeMutablePointer<Float>, oStride: Int)
    static func accumulateProbabilityHalfValue(p: UnsafePointer<Float>, pStride: Int, rows: Int, count: Int,
                                               v: UnsafePointer<UInt16>, vStride: Int, width: Int, bfloat16: Bool,
                                               o: UnsafeMutablePointer<Float>, oStride: Int)
    static func widenHalfRow(_ bits: UnsafePointer<UInt16>, count: Int, bfloat16: Bool, into out: UnsafeMutablePointer<Float>)
    static func narrowHalfRow(_ src: UnsafePointer<Float>, count: Int, bfloat16: Bool, into out: UnsafeMutablePointer<UInt16>)
    static func rowMaxima(_ x: UnsafePointer<Float>, stride: Int, rows: Int, columns: Int, into maxima: UnsafeMutablePointer<Float>)
    static func exponentiateRows(_ x: UnsafeMutablePointer<Float>, stride: Int, rows: Int, columns: Int,
                                 shifts: UnsafePointer<Float>, sums: UnsafeMutablePointer<Float>)
    static func scaleRows(_ x: UnsafeMutablePointer<Float>, stride: Int, rows: Int, columns: Int, factors: UnsafePointer<Float>)
    @discardableResult
    static func blockRowSums(_ x: UnsafePointer<Float>, rows: Int, d: Int, sums: UnsafeMutablePointer<Float>,
                             unitSums: UnsafeMutablePointer<Float>) -> Float
    @discardableResult
    static func centeredBlockRowSums(_ x: UnsafePointer<Float>, rows: Int, stride: Int, d: Int, mean: UnsafePointer<Float>,
                                     into centered: UnsafeMutablePointer<Float>, sums: UnsafeMutablePointer<Float>,
                                     unitSums: UnsafeMutablePointer<Float>) -> Float
    static func quantizeBlock(_ x: UnsafePointer<Float>, count: Int, premultiplier: Float, into out: UnsafeMutablePointer<Int8>) -> Float
    static func quantizeBlock(_ x: UnsafePointer<Float>, count: Int, premultiplier: Float, largest: Float,
                              into out: UnsafeMutablePointer<Int8>) -> Float
    static func addRows(_ x: UnsafePointer<Float>, rows: Int, stride: Int, d: Int, into sums: UnsafeMutablePointer<Float>)
    static func subtractFromRows(_ x: UnsafePointer<Float>, rows: Int, stride: Int, d: Int, mean: UnsafePointer<Float>,
                                 into out: UnsafeMutablePointer<Float>)
}

extension SpargeSIMD.KernelSet: TileKernels {}
extension SpargeSIMD.ScalarKernels: TileKernels {}
#if arch(x86_64)
extension SpargeSIMDAVX2.KernelSet: TileKernels {}
extension SpargeSIMDAVX512.KernelSet: TileKernels {}
#endif

/// Key-block columns are padded to this multiple in every kernel set (the widest compiled
/// set's column tile; tiles are powers of two), so that packed layouts, and therefore
/// results, do not depend on the set.
let kernelColumnMultiple: Int = {
    #if arch(x86_64)
    Swift.max(SpargeSIMD.KernelSet.columnTile, SpargeSIMDAVX2.KernelSet.columnTile, SpargeSIMDAVX512.KernelSet.columnTile)
    #else
    SpargeSIMD.KernelSet.columnTile
    #endif
}()

extension SpargeCPU {
    /// The kernel set of `level`, or nil when this build or this processor lacks it.
    static func kernels(for level: CPUKernelLevel) -> (any TileKernels.Type)? {
        switch level {
        case .baseline:
            return SpargeSIMD.KernelSet.self
        case .avx2:
            #if arch(x86_64)
            guard SpargeSIMDAVX2.KernelSet.isSpecialized, CPUFeatures.current.x86_64_v3 else { return nil }
            return SpargeSIMDAVX2.KernelSet.self
            #else
            return nil
            #endif
        case .avx512:
            #if arch(x86_64)
            guard SpargeSIMDAVX512.KernelSet.isSpecialized, CPUFeatures.current.x86_64_v4VNNI else { return nil }
            return SpargeSIMDAVX512.KernelSet.self
            #else
            return nil
            #endif
        }
    }
}
