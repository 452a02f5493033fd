import SpargeSIMD

// Block geometry: how a shape divides into stage-1 blocks and kernel tiles. The one place
// block counts are computed (the API's `AttentionShape.blockCounts`, the pipeline, the
// kernels and `BlockMap.validate` all read it).

extension AttentionShape {
    /// The number of query blocks (`ceil(queryLength / blockQ)`) and key blocks
    /// (`ceil(keyLength / blockK)`): the `nq x nk` of this shape's block maps.
    public func blockCounts(blockQ: Int, blockK: Int) -> (queryBlocks: Int, keyBlocks: Int) {
        (blockCount(queryLength, blockQ), blockCount(keyLength, blockK))
    }
}

/// Geometry shared by the preparation and the kernel.
struct SparseGeometry: Sendable {
    let shape: AttentionShape
    let blockQ: Int, blockK: Int
    let queryBlocks: Int, keyBlocks: Int
    let pairs: Int              // int16 pairs per row
    let rowsPad: Int            // blockQ rounded up to 4 (kernel row tile)
    let columnsPad: Int         // blockK rounded up to the widest kernel set's column tile
    let width: Int              // head dim rounded up to 8 (to the column tile with fixed-point P.V)
    /// Fixed-point P.V (``SpargeParameters/fixedPointPV``): V is also kept as integers
    /// per key block, `width` channels (the kernels' column multiple) x `columnsPad / 2` key pairs.
    let fixedPointValues: Bool
    /// Key blocks between consecutive kv heads in the key-side buffers: `keyBlocks`, or a KV
    /// cache's capacity (its buffers keep their layout while it grows).
    let keyBlockStride: Int

    init(shape: AttentionShape, blockQ: Int, blockK: Int, keyBlockStride: Int? = nil, fixedPointValues: Bool = false) {
        self.shape = shape
        self.blockQ = blockQ
        self.blockK = blockK
        (queryBlocks, keyBlocks) = shape.blockCounts(blockQ: blockQ, blockK: blockK)
        pairs = pairCount(shape.headDim)
        rowsPad = roundUp(blockQ, 4)
        columnsPad = roundUp(blockK, kernelColumnMultiple)
        // The fixed-point P.V tile writes whole column tiles of the accumulator.
        width = roundUp(shape.headDim, fixedPointValues ? kernelColumnMultiple : 8)
        self.fixedPointValues = fixedPointValues
        self.keyBlockStride = keyBlockStride ?? keyBlocks
    }

    /// Bytes of the call's block map (`B,H,nq,nk`).
    var mapCount: Int { shape.batch * shape.heads * queryBlocks * keyBlocks }
    var packedKeyBlock: Int { (pairs + 1) * columnsPad * 2 }    // Int16 per packed key block (either score layout)
    var packedQueryHead: Int { queryBlocks * rowsPad * pairs }   // Int32 per query head
    var packedValueBlock: Int { columnsPad / 2 * width * 2 }     // Int16 per fixed-point value block
    /// Rows of an exported split-K state: a query block's rows, or fewer when the call has fewer
    /// queries (a decoding step exports one row per head, not a whole block's).
    var partialRows: Int { Swift.min(rowsPad, roundUp(shape.queryLength, 4)) }
}

