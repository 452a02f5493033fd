/// Per-worker scratch memory of the kernels: allocated once per call (or once per plan) and
/// reused for every tile the worker runs, so the hot loops never allocate.
final class WorkerScratch: @unchecked Sendable {
    let scores: RawBuffer<Float>       // tile rows x tile columns
    let rowMax: RawBuffer<Float>
    let rowSum: RawBuffer<Float>
    let tileMax: RawBuffer<Float>
    let rowFactor: RawBuffer<Float>    // per-row rescale factors of one tile
    let rowTotal: RawBuffer<Float>     // per-row sums of one tile's probabilities
    let acc: RawBuffer<Float>          // tile rows x padded head dim
    let block: RawBuffer<Float>        // one block of rows (stage 1 and quantization)
    let vector: RawBuffer<Float>       // one row (stage 1 sums)
    let sums: RawBuffer<Double>        // one row (K mean)
    let row: RawBuffer<Float>          // one input row widened to fp32, or one output row
    let groupQuery: RawBuffer<Int32>   // grouped decode: the group's packed query rows
    let groupInts: RawBuffer<Int>      // grouped decode: per-head selected, ordinal, share, tile counts
    let groupFlags: RawBuffer<UInt8>   // grouped decode: heads active for the current block
    let int8Block: RawBuffer<Int8>     // one quantized block
    let probabilities: RawBuffer<Float>
    let keys: RawBuffer<UInt64>
    let queryMean: RawBuffer<Float>     // Q smoothing: the query block's mean in score units
    let keyTerms: RawBuffer<Float>     // Q smoothing: mean . key for each column of one tile
    let probabilityPairs: RawBuffer<Int32>   // fixed-point P.V: one tile's P in key pairs
    let probabilityScales: RawBuffer<Float>  // fixed-point P.V: per row, the value of one step
    let rowSinks: RawBuffer<Float>     // learned sink logits: per row of one tile, in the kernel's units
    /// CPU time this worker spent in stage 1 and in quantization (nanoseconds).
    var stage1Nanos: UInt64 = 0
    var quantizationNanos: UInt64 = 0
    /// When the current block's quantization started (see `summarizeAndQuantize`).
    var lastMark: UInt64 = 0
    /// A block summarized since the pipeline's start had a mean that is not finite (see
    /// `SparseOperands.summarizeAndQuantize`).
    var sawNonFinite = false
    let headDim: Int
    let tileRows: Int
    let tileColumns: Int
    let width: Int
    /// The kernel set this worker runs, chosen when the scratch is made (see ``SpargeCPU``).
    let kernels: any TileKernels.Type

    init(tileRows: Int, tileColumns: Int, width: Int, blockRows: Int, d: Int, keyBlocks: Int) {
        self.tileRows = tileRows
        headDim = d
        self.tileColumns = tileColumns
        self.width = width
        scores = RawBuffer(count: tileRows * tileColumns, zero: 0)
        rowMax = RawBuffer(count: tileRows, zero: 0)
        rowSum = RawBuffer(count: tileRows, zero: 0)
        tileMax = RawBuffer(count: tileRows, zero: 0)
        rowFactor = RawBuffer(count: tileRows, zero: 0)
        rowTotal = RawBuffer(count: tileRows, zero: 0)
        kernels = SpargeCPU.activeKernels
        acc = RawBuffer(count: tileRows * width, zero: 0)
        block = RawBuffer(count: blockRows * d, zero: 0)
        vector = RawBuffer(count: d, zero: 0)
        sums = RawBuffer(count: d, zero: 0)
        row = RawBuffer(count: width, zero: 0)
        groupQuery = RawBuffer(count: tileRows * ((d + 1) / 2), zero: 0)
        groupInts = RawBuffer(count: 6 * tileRows, zero: 0)
        groupFlags = RawBuffer(count: tileRows, zero: 0)
        int8Block = RawBuffer(count: blockRows * d, zero: 0)
        probabilities = RawBuffer(count: compressedScoreRows * keyBlocks, zero: 0)
        keys = RawBuffer(count: selectionKeyScratch(keyBlocks: keyBlocks), zero: 0)
        queryMean = RawBuffer(count: d, zero: 0)
        keyTerms = RawBuffer(count: tileColumns, zero: 0)
        probabilityPairs = RawBuffer(count: tileRows * (tileColumns / 2), zero: 0)
        probabilityScales = RawBuffer(count: tileRows, zero: 0)
        rowSinks = RawBuffer(count: tileRows, zero: 0)
    }

    var softmax: OnlineSoftmax {
        OnlineSoftmax(rowMax: rowMax.pointer, rowSum: rowSum.pointer, tileMax: tileMax.pointer,
                      rowFactor: rowFactor.pointer, rowTotal: rowTotal.pointer,
                      acc: acc.pointer, width: width, kernels: kernels,
                      probabilityPairs: probabilityPairs.pointer, probabilityScales: probabilityScales.pointer)
    }
}
